"""`rubric author`: an instance-specific rubric for each record, written by a model from the problem
and its reference (Rubrics as Rewards, arXiv 2507.17746: 7 to 20 weighted items, pitfalls included).

The rubric goes into the record's `rubric` field, with its provenance, so `rubricate rubric` scores
the record against it directly. The model's JSON is tidied before it is validated against
`schemas/rubric_file.schema.json`: a missing or malformed id is made from the title, numbers and
booleans written as strings are read as such, keys the schema does not know are dropped. Authored
items may only use the `llm` and `answer` checks: a rubric never runs a pattern a model wrote. A
rubric that still breaks a rule (too few items, no pitfall, an `answer` check without a reference
answer, ...) gets one repair request; after that the record's `rubric` is `{error, provenance}` and
`rubricate rubric` reports it for that record.
"""

from __future__ import annotations

import re
from typing import Any

from rubricate.answers import answer_text
from rubricate.errors import RubricateError
from rubricate.generators.rubric import json_value, render_chat
from rubricate.llm.types import Request, RequestFailed, failure
from rubricate.prompts import Template, variables
from rubricate.records import model_provenance
from rubricate.rubrics import RubricError, parse_rubric

KIND = "rubric"  # writes the record's `rubric` field, not a feedback entry
REQUIRES = ("problem",)
AUTHORED_CHECKS = ("llm", "answer")
_KEYS = ("id", "title", "description", "weight", "hard", "check")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:48].strip("-")
    return slug or "item"


def _number(value: Any) -> Any:
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _flag(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return value


def read_rubric(text: str, *, has_reference: bool, min_items: int = 7,
                max_items: int = 20) -> tuple[dict | None, list[str]]:
    """(rubric data, []) or (None, what is wrong) from the author's answer."""
    value = json_value(text)
    raw_items = value.get("items") if isinstance(value, dict) else value if isinstance(value, list) else None
    if not isinstance(raw_items, list):
        return None, ['the answer holds no JSON object with "items"']
    problems: list[str] = []
    items: list[dict] = []
    used: set[str] = set()
    for i, raw in enumerate(raw_items):
        if not isinstance(raw, dict):
            problems.append(f"items[{i}] is not an object")
            continue
        item = {k: raw[k] for k in _KEYS if k in raw}
        title = item.get("title")
        ident = item.get("id")
        if not (isinstance(ident, str) and _ID.match(ident) and len(ident) <= 64):
            ident = _slug(ident if isinstance(ident, str) and ident.strip() else str(title or f"item-{i + 1}"))
        base, n = ident, 2
        while ident in used:
            ident, n = f"{base}-{n}", n + 1
        used.add(ident)
        item["id"] = ident
        if "weight" in item:
            item["weight"] = _number(item["weight"])
        if "hard" in item:
            item["hard"] = _flag(item["hard"])
        check = item.get("check", "llm")
        kind = check.get("type") if isinstance(check, dict) else check
        if kind not in AUTHORED_CHECKS:
            problems.append(f"item {ident!r}: check {kind!r} is not allowed here (only llm and answer)")
        elif kind == "answer" and not has_reference:
            problems.append(f"item {ident!r}: check 'answer' needs a reference answer, and this problem has none")
        items.append(item)
    if not min_items <= len(items) <= max_items:
        problems.append(f"the rubric has {len(items)} criteria; write {min_items} to {max_items}")
    if items and not any(isinstance(i.get("weight"), int) and i["weight"] < 0 for i in items):
        problems.append("no Pitfall criterion (a criterion with weight -1 or -2)")
    data = {"items": items}
    try:
        parse_rubric(data, "the rubric")
    except RubricError as exc:
        problems.append(exc.message.removeprefix("the rubric: "))
    return (None, problems) if problems else (data, [])


def template_values(record: dict, min_items: int, max_items: int) -> dict[str, Any]:
    reference = record.get("reference") if isinstance(record.get("reference"), dict) else {}
    solution = reference.get("solution")
    answer = answer_text(reference.get("answer"))
    return {**variables(record), "min_items": min_items, "max_items": max_items,
            "reference_answer": answer if answer and answer.strip() else None,
            "reference_solution": solution if isinstance(solution, str) and solution.strip() else None}


async def author_record(record: dict, llm: Any, *, template: Template, repair: Template, params: dict[str, Any],
                        min_items: int = 7, max_items: int = 20) -> dict:
    """Write `record["rubric"]`: the authored rubric with its provenance, or {error, provenance}."""
    prov = model_provenance("rubric_author", llm, template=template, params={**params, "min_items": min_items, "max_items": max_items})
    values = template_values(record, min_items, max_items)
    has_reference = values["reference_answer"] is not None
    error: dict[str, Any] | None = None
    data = None
    try:
        system, prompt = render_chat(template, values)
        messages: tuple = ({"role": "user", "content": prompt},)
        raw = (await llm.complete(Request(messages=messages, system=system, json=True, **params))).text
        data, problems = read_rubric(raw, has_reference=has_reference, min_items=min_items, max_items=max_items)
        if data is None:
            _, ask = render_chat(repair, {"problems": problems, "min_items": min_items, "max_items": max_items})
            followup = messages + ({"role": "assistant", "content": raw}, {"role": "user", "content": ask})
            try:
                again = (await llm.complete(Request(messages=followup, system=system, json=True, **params))).text
            except RequestFailed as exc:
                error = {"reason": f"{'; '.join(problems)}; the repair request failed: {exc.reason}", "raw": raw,
                         "attempts": 1 + exc.attempts}
            else:
                data, second = read_rubric(again, has_reference=has_reference, min_items=min_items,
                                           max_items=max_items)
                if data is None:
                    error = {"reason": f"{'; '.join(second)} (after one repair; first answer: {'; '.join(problems)})",
                             "raw": again, "attempts": 2}
    except (RequestFailed, RubricateError) as exc:
        error = failure(exc)
    if error is not None or data is None:
        record["rubric"] = {"error": error, "provenance": prov}
    else:
        record["rubric"] = {"name": f"authored for {record.get('id')}", **data, "provenance": prov}
    return record
