"""`rubric`: a response checked against a rubric's items, aggregated into a score and a gate.

Items checked by `answer`, `regex`, `length` and `format` need no model (rubricate/rubrics.py). The
`llm` items of a record go to a judge in one call (or one call each with `per_item`), which answers
with a JSON object: {"items": [{"id", "rationale", "met"}]}. The answer is read leniently (a code
fence, text around the object, "yes"/"no" for true/false, an id given as the item's title), and
whatever still cannot be read (an item left out, a verdict that is neither true nor false, no JSON at
all) gets one repair request naming exactly what is missing. What is still unread after that stays
`met: null` and the entry says why in `error`; every verdict that could be read is kept, and a
verdict for an item the rubric does not have is set aside in `ignored`.

With `implicit`, the judge sees the whole rubric and gives one 1-10 rating instead (RaR's implicit
aggregation): score = (rating - 1) / 9. Explicit scores and the gate are defined in rubrics.py.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass, field
from typing import Any

from rubricate.answers import answer_text
from rubricate.errors import RubricateError
from rubricate.llm.types import FatalError, Request, RequestFailed
from rubricate import prompts
from rubricate.prompts import Template, variables
from rubricate.records import model_provenance, provenance, response_text, set_feedback
from rubricate.rubrics import (Item, Rubric, RubricError, check_item, explicit_score, gate, implicit_score,
                               rubric_of)

KIND = "rubric"
REQUIRES = ("problem",)

# Tags the bundled templates delimit data with; inside the response they are defused so a response
# cannot close its own block and speak as the prompt.
_TAGS = ("response", "problem", "reference")  # the bundled templates' data delimiters
_FENCE = re.compile(r"```[A-Za-z]*[ \t]*\n?(.*?)```", re.S)
_TRAILING_COMMA = re.compile(r",(\s*[}\]])")
_TRUE = {"true", "yes", "y", "met", "satisfied", "pass", "passed"}
_FALSE = {"false", "no", "n", "not met", "unmet", "not satisfied", "fail", "failed"}
_VERDICT_KEYS = ("met", "satisfied", "verdict")
_ID_KEYS = ("id", "criterion", "item")
_RATIONALE_KEYS = ("rationale", "reason", "explanation")
_RATING = re.compile(r"\brating\b\W{0,4}(\d+(?:\.\d+)?)", re.I)


@dataclass(frozen=True)
class Templates:
    judge: Template
    item: Template
    implicit: Template
    repair: Template


def bundled_templates() -> Templates:
    from rubricate.prompts import bundled

    return Templates(bundled("rubric_judge"), bundled("rubric_judge_item"), bundled("rubric_implicit"),
                     bundled("rubric_repair"))


# -- prompts -----------------------------------------------------------------------------------------

def quote(text: str) -> str:
    return prompts.quote(text, _TAGS)


def render_chat(template: Template, values: dict[str, Any]) -> tuple[str | None, str]:
    system, user = prompts.render_chat(template, values)
    return system, user.strip()


def template_values(record: dict, text: str, items: list[Item] | tuple[Item, ...]) -> dict[str, Any]:
    reference = record.get("reference") if isinstance(record.get("reference"), dict) else {}
    solution = reference.get("solution")
    return {**variables(record), "quoted_response": quote(text),
            "reference_answer": answer_text(reference.get("answer")),
            "reference_solution": solution if isinstance(solution, str) and solution.strip() else None,
            "items": [{"id": i.id, "title": i.title, "description": i.description, "weight": i.weight}
                      for i in items]}


# -- reading the judge's answer ----------------------------------------------------------------------

def json_value(text: str) -> Any:
    """The JSON object (or array) a judge answered with: the whole text, a fenced block, else the
    last object found in the text. Trailing commas are forgiven. None when there is none."""
    candidates = [text.strip()] + [m.group(1).strip() for m in _FENCE.finditer(text)]
    for candidate in candidates:
        for attempt in (candidate, _TRAILING_COMMA.sub(r"\1", candidate)):
            try:
                value = json.loads(attempt)
            except ValueError:
                continue
            if isinstance(value, (dict, list)):
                return value
    decoder, found, i = json.JSONDecoder(), None, 0
    cleaned = _TRAILING_COMMA.sub(r"\1", text)
    while i < len(cleaned):
        if cleaned[i] in "{[":
            try:
                value, end = decoder.raw_decode(cleaned, i)
            except ValueError:
                i += 1
                continue
            if isinstance(value, (dict, list)):
                found, i = value, end
                continue
        i += 1
    return found


def _verdict(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    return None


@dataclass
class Verdicts:
    met: dict[str, bool] = field(default_factory=dict)
    rationale: dict[str, str | None] = field(default_factory=dict)
    unread: dict[str, str] = field(default_factory=dict)  # item id -> why
    ignored: list[str] = field(default_factory=list)


def _entries(value: Any, items: list[Item]) -> list[tuple[Any, Any]] | None:
    """(id or None, verdict object) pairs from the shapes judges use; None when nothing fits."""
    ids = {item.id for item in items}
    if isinstance(value, dict):
        for key in ("items", "verdicts", "criteria", "results"):
            if key in value:
                return _entries(value[key], items)
        if any(k in value for k in _VERDICT_KEYS):  # one verdict object
            return [(next((value[k] for k in _ID_KEYS if k in value), None), value)]
        if ids & set(value):  # {"<id>": {...} or true}
            return list(value.items())
        return None
    if isinstance(value, list):
        return [(next((v[k] for k in _ID_KEYS if k in v), None) if isinstance(v, dict) else None, v) for v in value]
    return None


def read_verdicts(text: str, items: list[Item]) -> Verdicts:
    """What a judge's answer says about `items`, and what it leaves unread."""
    out = Verdicts()
    entries = _entries(json_value(text), items)
    if entries is None:
        for item in items:
            out.unread[item.id] = "the answer holds no JSON object with verdicts"
        return out
    by_id = {item.id: item for item in items}
    by_name = {**{item.title.strip().lower(): item for item in items}, **{item.id.lower(): item for item in items}}
    seen: set[str] = set()
    for key, body in entries:
        item = by_id.get(key) if isinstance(key, str) else None
        if item is None and isinstance(key, str):
            item = by_name.get(key.strip().lower())
        if item is None and key is None and len(items) == 1 and len(entries) == 1:
            item = items[0]  # one criterion asked, one verdict given without its id
        if item is None:
            out.ignored.append(f"a verdict for an item the rubric does not have: {key!r}" if key is not None
                               else "a verdict without an item id")
            continue
        if item.id in seen:
            out.ignored.append(f"a second verdict for item {item.id!r}")
            continue
        seen.add(item.id)
        raw = next((body[k] for k in _VERDICT_KEYS if k in body), None) if isinstance(body, dict) else body
        met = _verdict(raw)
        if met is None:
            out.unread[item.id] = (f"verdict {raw!r} is not true or false" if raw is not None
                                   else "no \"met\" in its entry")
            continue
        out.met[item.id] = met
        reason = next((body[k] for k in _RATIONALE_KEYS if k in body), None) if isinstance(body, dict) else None
        out.rationale[item.id] = None if reason is None else str(reason).strip() or None
    for item in items:
        if item.id not in seen:
            out.unread[item.id] = "missing from the answer"
    return out


def read_rating(text: str) -> tuple[int | None, str | None, str | None]:
    """(rating 1-10, rationale, what is wrong) from an implicit judge's answer."""
    value = json_value(text)
    raw: Any = None
    rationale = None
    if isinstance(value, dict):
        raw = next((value[k] for k in ("rating", "score") if k in value), None)
        reason = next((value[k] for k in _RATIONALE_KEYS if k in value), None)
        rationale = None if reason is None else str(reason).strip() or None
    if raw is None:
        m = _RATING.search(text)
        if m is None:
            return None, None, "no \"rating\" found in the answer"
        raw = m.group(1)
    if isinstance(raw, str):
        raw = raw.strip().split("/")[0].strip()
        try:
            raw = float(raw)
        except ValueError:
            return None, rationale, f"rating {raw!r} is not a number"
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or float(raw) != int(raw):
        return None, rationale, f"rating {raw!r} is not an integer"
    if not 1 <= int(raw) <= 10:
        return None, rationale, f"rating {int(raw)} is outside 1-10"
    return int(raw), rationale, None


# -- one record --------------------------------------------------------------------------------------

def _base(mode: str) -> dict[str, Any]:
    rated = {"rating": None, "rationale": None} if mode == "implicit" else {}
    return {"mode": mode, "items": [], "score": None, **rated, "gate": None, "rubric": None}


def _item_rows(rubric: Rubric, met: dict, rationale: dict, repaired: set[str]) -> list[dict[str, Any]]:
    rows = []
    for item in rubric.items:
        row = {"id": item.id, "met": met.get(item.id), "rationale": rationale.get(item.id), "weight": item.weight,
               "hard": item.hard, "check": item.kind}
        if item.id in repaired:
            row["repaired"] = True
        rows.append(row)
    return rows


def _finish(entry: dict, rubric: Rubric, met: dict, reasons: list[str]) -> None:
    if entry["mode"] == "explicit":
        entry["score"], why = explicit_score(rubric.items, met)
        if why and "error" not in entry:
            reasons.append(why)
    else:
        entry["score"] = implicit_score(entry.get("rating"))
    entry["gate"], why = gate(rubric.items, met)
    if why and "error" not in entry:
        reasons.append(why)
    if reasons and (entry["score"] is None or entry["gate"] is None):
        entry["reason"] = "; ".join(reasons)


def _start(record: dict, rubric: Rubric | None, mode: str, prov: dict) -> tuple[dict, Rubric | None, str | None]:
    """The entry so far, the rubric (None when it is unusable: the entry then carries `error`),
    and the response text."""
    entry = _base(mode)
    try:
        rub = rubric_of(record, rubric)
    except RubricError as exc:
        entry["rubric"] = {"name": None, "source": "record", "hash": None}
        entry["error"] = {"reason": exc.message, "raw": None, "attempts": 0}
        entry["provenance"] = prov
        return entry, None, None
    entry["rubric"] = rub.ref()
    return entry, rub, response_text(record)


def score_static(record: dict, rubric: Rubric | None, *, implicit: bool = False) -> dict:
    """feedback.rubric without a model: every item checked deterministically. A rubric with `llm`
    items (or `implicit`) leaves those undecided with an error saying a model is needed."""
    mode = "implicit" if implicit else "explicit"
    prov = provenance(KIND, params={"per_item": False, "implicit": implicit})
    entry, rub, text = _start(record, rubric, mode, prov)
    if rub is None:
        return set_feedback(record, KIND, entry)
    met, rationale, reasons = _deterministic(record, rub, text)
    if text is not None and (rub.judged or implicit):
        for item in rub.judged:
            rationale[item.id] = "not judged: no --model"
        entry["error"] = {"reason": "the rubric has items a judge decides (check: llm) but no --model was given"
                          if rub.judged else "--implicit needs a judge (--model)", "raw": None, "attempts": 0}
    entry["items"] = _item_rows(rub, met, rationale, set())
    _finish(entry, rub, met, reasons)
    entry["provenance"] = prov
    return set_feedback(record, KIND, entry)


def _deterministic(record: dict, rub: Rubric, text: str | None) -> tuple[dict, dict, list[str]]:
    """(met, rationale) of every item checked without a model, and why nothing could be checked."""
    met: dict[str, bool | None] = {}
    rationale: dict[str, str | None] = {}
    reasons: list[str] = []
    if text is None:
        for item in rub.items:
            rationale[item.id] = "no response"
        reasons.append("no response")
        return met, rationale, reasons
    for item in rub.items:
        if item.kind != "llm":
            met[item.id], rationale[item.id] = check_item(item, record, text)
    return met, rationale, reasons


async def score_record(record: dict, llm: Any, *, rubric: Rubric | None, templates: Templates,
                       params: dict[str, Any], per_item: bool = False, implicit: bool = False) -> dict:
    """feedback.rubric with a judge `llm` for the `llm` items (or for one overall rating)."""
    mode = "implicit" if implicit else "explicit"
    template = templates.implicit if implicit else templates.item if per_item else templates.judge
    prov = model_provenance(KIND, llm, template=template, params={**params, "per_item": per_item, "implicit": implicit})
    entry, rub, text = _start(record, rubric, mode, prov)
    if rub is None:
        return set_feedback(record, KIND, entry)
    met, rationale, reasons = _deterministic(record, rub, text)
    repaired: set[str] = set()
    if text is not None:
        try:
            if implicit:
                for item in rub.judged:
                    rationale[item.id] = "judged as a whole (--implicit)"
                await _rate(entry, llm, record, text, rub, templates, params)
            elif rub.judged:
                calls = ([[item] for item in rub.judged] if per_item else [rub.judged])
                results = await asyncio.gather(*(
                    _judge(llm, record, text, items, template, templates.repair, params) for items in calls))
                _merge(entry, results, met, rationale, repaired)
        except FatalError:
            raise  # no record can succeed: stop the run with the provider's message
        except RubricateError as exc:
            entry["error"] = {"reason": exc.message, "raw": None, "attempts": 0}
    entry["items"] = _item_rows(rub, met, rationale, repaired)
    _finish(entry, rub, met, reasons)
    entry["provenance"] = prov
    return set_feedback(record, KIND, entry)


@dataclass
class _Judged:
    verdicts: Verdicts
    raw: str | None = None
    attempts: int = 0
    failure: str | None = None  # a request that failed after its retries
    repair_sent: bool = False
    repaired: set[str] = field(default_factory=set)  # ids read from the answer to the repair request


async def _ask(llm: Any, messages: tuple, system: str | None, params: dict[str, Any]) -> str:
    return (await llm.complete(Request(messages=messages, system=system, json=True, **params))).text


async def _judge(llm: Any, record: dict, text: str, items: list[Item], template: Template, repair: Template,
                 params: dict[str, Any]) -> _Judged:
    """Verdicts for `items` from one judge call, and at most one repair request."""
    values = template_values(record, text, items)
    if len(items) == 1:
        values["item"] = values["items"][0]
    system, prompt = render_chat(template, values)
    messages: tuple = ({"role": "user", "content": prompt},)
    try:
        raw = await _ask(llm, messages, system, params)
    except RequestFailed as exc:
        return _Judged(Verdicts(unread={i.id: "the request failed" for i in items}), None, exc.attempts, exc.reason)
    verdicts = read_verdicts(raw, items)
    if not verdicts.unread:
        return _Judged(verdicts, raw, 1)
    missing = [i for i in items if i.id in verdicts.unread]
    problems = [f"item {i}: {why}" for i, why in verdicts.unread.items()]
    _, ask = render_chat(repair, {"problems": problems, "implicit": False, "items": [
        {"id": i.id, "title": i.title, "description": i.description} for i in missing]})
    followup = messages + ({"role": "assistant", "content": raw}, {"role": "user", "content": ask})
    try:
        again = await _ask(llm, followup, system, params)
    except RequestFailed as exc:
        return _Judged(verdicts, raw, 1 + exc.attempts, f"the repair request failed: {exc.reason}", True)
    second = read_verdicts(again, missing)
    verdicts.met.update(second.met)
    verdicts.rationale.update(second.rationale)
    verdicts.ignored.extend(second.ignored)
    verdicts.unread = {i: f"{why} (first answer: {verdicts.unread[i]})" for i, why in second.unread.items()}
    return _Judged(verdicts, again, 2, repair_sent=True, repaired=set(second.met))


def _merge(entry: dict, results: list[_Judged], met: dict, rationale: dict, repaired: set[str]) -> None:
    unread, failures, raw, attempts, ignored = {}, [], None, 0, []
    for result in results:
        v = result.verdicts
        met.update(v.met)
        rationale.update(v.rationale)
        ignored.extend(v.ignored)
        attempts += result.attempts
        if result.repair_sent:
            entry["repaired"] = True
        repaired.update(result.repaired)
        if result.failure:
            failures.append(result.failure)
        if v.unread or result.failure:
            raw = raw if raw is not None else result.raw
        for item_id, why in v.unread.items():
            unread[item_id] = why
            rationale[item_id] = None
    if ignored:
        entry["ignored"] = ignored
    if unread or failures:
        parts = []
        if unread:
            parts.append("no readable verdict for " + "; ".join(f"{i} ({why})" for i, why in unread.items()))
        parts.extend(failures)
        entry["error"] = {"reason": "; ".join(parts), "raw": raw, "attempts": attempts}


async def _rate(entry: dict, llm: Any, record: dict, text: str, rub: Rubric, templates: Templates,
                params: dict[str, Any]) -> None:
    """RaR's implicit aggregation: one 1-10 rating with the whole rubric in view."""
    system, prompt = render_chat(templates.implicit, template_values(record, text, rub.items))
    messages: tuple = ({"role": "user", "content": prompt},)
    try:
        raw = await _ask(llm, messages, system, params)
    except RequestFailed as exc:
        entry["error"] = {"reason": exc.reason, "raw": None, "attempts": exc.attempts}
        return
    rating, rationale, problem = read_rating(raw)
    attempts = 1
    if problem is not None:
        _, ask = render_chat(templates.repair, {"problems": [problem], "implicit": True, "items": []})
        followup = messages + ({"role": "assistant", "content": raw}, {"role": "user", "content": ask})
        first = problem
        try:
            raw = await _ask(llm, followup, system, params)
        except RequestFailed as exc:
            entry["error"] = {"reason": f"{first}; the repair request failed: {exc.reason}", "raw": raw,
                              "attempts": 1 + exc.attempts}
            return
        attempts = 2
        rating, rationale, problem = read_rating(raw)
        if problem is not None:
            entry["error"] = {"reason": f"{problem} (after one repair; first answer: {first})", "raw": raw,
                              "attempts": attempts}
            return
        entry["repaired"] = True
    entry["rating"], entry["rationale"] = rating, rationale
