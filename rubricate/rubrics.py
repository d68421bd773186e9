"""Rubrics: reading and validating rubric files, the checks that need no model, and aggregation.

A rubric is a list of weighted items (Rubrics as Rewards, arXiv 2507.17746: Essential 5, Important
3-4, Optional 1-2, Pitfall -1 or -2). An item is *met* when its description is true of the response,
so a met pitfall costs its weight. Aggregation:

    score = clip( sum(w_i for met items i) / sum(w_i for items with w_i > 0), 0, 1 )

beside it a gate, so a rubric can accept or reject a rollout while the scalar reward stays what it is
(DRO, arXiv 2506.13351): accept when every `hard` item passes, a hard item passing when it is met
and a hard pitfall (w < 0) when it is not. A rubric is data read with `yaml.safe_load` /
`json.loads` and checked against `schemas/rubric_file.schema.json`; nothing in it is ever executed.
Regular expressions (Python `re`, the user's own: rubrics a model authors may not carry any) are
compiled when the rubric is read, so a bad one stops the run before any record is read.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from rubricate.errors import UsageError
from rubricate.records import canonical_json, template_hash

CHECKS = ("llm", "answer", "regex", "length", "format")
_FLAGS = {"i": re.I, "m": re.M, "s": re.S}


class RubricError(UsageError):
    """A rubric that cannot be used; the message names its file (or record) and the item."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message, hint or "Rubrics follow rubricate/schemas/rubric_file.schema.json; "
                                          "see examples/rubrics/gsm8k.yaml.")


@dataclass(frozen=True)
class Item:
    id: str
    title: str
    description: str
    weight: int
    hard: bool
    check: dict[str, Any]  # always an object with `type`

    @property
    def kind(self) -> str:
        return self.check["type"]

    def passes(self, met: bool | None) -> bool | None:
        """For the gate: a pitfall passes when it is not met."""
        if met is None:
            return None
        return (not met) if self.weight < 0 else met


@dataclass(frozen=True)
class Rubric:
    name: str | None
    items: tuple[Item, ...]
    source: str  # the file, or "record"
    hash: str
    data: dict[str, Any] = field(repr=False, compare=False)

    @property
    def judged(self) -> list[Item]:
        return [item for item in self.items if item.kind == "llm"]

    def ref(self) -> dict[str, Any]:
        return {"name": self.name, "source": self.source, "hash": self.hash}


# -- reading -----------------------------------------------------------------------------------------

def load_rubric(path: str | Path) -> Rubric:
    """A rubric file (YAML, or JSON by its suffix); UsageError naming the file and item otherwise."""
    path = Path(path)
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise RubricError(f"--rubric {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RubricError(f"{path}: cannot read the rubric ({exc})") from exc
    return parse_rubric(_parse_text(text, str(path)), str(path))


def _parse_text(text: str, source: str) -> Any:
    if source.endswith(".json"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise RubricError(f"{source}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from exc
    import yaml

    try:
        # safe_load builds plain dicts, lists and scalars only: a `!!python/...` tag is an error,
        # never a call.
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise RubricError(f"{source}: not valid YAML ({where}{problem})",
                          hint="Rubric files are plain data: no tags such as !!python/...") from exc


def parse_rubric(data: Any, source: str) -> Rubric:
    """Validate a rubric object (as read from a file or a record) and build it."""
    from rubricate import schemas

    if not isinstance(data, dict):
        raise RubricError(f"{source}: a rubric is a mapping with `items`, not {type(data).__name__}")
    problems = [_describe(data, path, message) for path, message in schemas.errors(data, "rubric_file")]
    if problems:
        more = f"; and {len(problems) - 5} more" if len(problems) > 5 else ""
        raise RubricError(f"{source}: " + "; ".join(problems[:5]) + more)
    items, seen = [], set()
    for i, raw in enumerate(data["items"]):
        item = _item(raw)
        label = f"{source}: item {item.id!r} (items[{i}])"
        if item.id in seen:
            raise RubricError(f"{label}: the id is used twice; ids must be unique")
        seen.add(item.id)
        if item.kind == "regex":
            try:
                compiled_pattern(item.check["pattern"], item.check.get("flags", ""))
            except re.error as exc:
                raise RubricError(f"{label}: check.pattern: bad regular expression `{item.check['pattern']}`: "
                                  f"{exc}") from None
        if item.kind == "length" and item.check.get("max", 1 << 62) < item.check.get("min", 0):
            raise RubricError(f"{label}: check: min {item.check['min']} is above max {item.check['max']}")
        items.append(item)
    if not any(item.weight > 0 for item in items):
        raise RubricError(f"{source}: no item has a positive weight, so no score can be formed",
                          hint="score = met weights / sum of the positive weights.")
    body = {k: v for k, v in data.items() if k != "provenance"}
    return Rubric(name=data.get("name"), items=tuple(items), source=source,
                  hash=template_hash(canonical_json(body)), data=data)


def _item(raw: dict) -> Item:
    check = raw.get("check", "llm")
    check = {"type": check} if isinstance(check, str) else dict(check)
    return Item(id=raw["id"], title=raw["title"], description=raw["description"], weight=int(raw["weight"]),
                hard=bool(raw.get("hard", False)), check=check)


def _describe(data: dict, path: str, message: str) -> str:
    """`item 'x' (items[2]): weight: ...` from a schema error at `items.2.weight`."""
    parts = path.split(".")
    if parts[0] == "items" and len(parts) > 1 and parts[1].isdigit():
        i = int(parts[1])
        raw = data["items"][i] if i < len(data["items"]) else None
        name = raw.get("id") if isinstance(raw, dict) and isinstance(raw.get("id"), str) else None
        label = f"item {name!r} (items[{i}])" if name else f"items[{i}]"
        rest = ".".join(parts[2:])
        if rest in ("check", "check.type") and "is not one of" in message:
            value = message.split(" is not one of")[0]
            message = f"unknown check {value} (one of: {', '.join(CHECKS)})"
        if message == "missing" and rest in ("id", "title", "description", "weight"):
            message = "missing (every item needs id, title, description and weight)"
        if rest == "check" and "is not valid under any of the given schemas" in message:
            message = "a length check needs min, max or both"  # the only anyOf in the schema
        return f"{label}: {rest}: {message}" if rest else f"{label}: {message}"
    return f"{path}: {message}"


@lru_cache(maxsize=256)
def compiled_pattern(pattern: str, flags: str = "") -> re.Pattern:
    value = 0
    for letter in flags:
        value |= _FLAGS[letter]
    return re.compile(pattern, value)


@lru_cache(maxsize=64)
def _load_cached(path: str) -> Rubric:
    return load_rubric(path)


def rubric_of(record: dict, given: Rubric | None) -> Rubric:
    """The rubric that applies: `--rubric FILE` for every record, else the record's own `rubric`
    (an object, or the path of a rubric file). RubricError when it is missing or invalid."""
    if given is not None:
        return given
    own = record.get("rubric")
    if isinstance(own, str):
        return _load_cached(own)
    if isinstance(own, dict) and isinstance(own.get("error"), dict) and "items" not in own:
        raise RubricError(f"the record's rubric was not written: {own['error'].get('reason')}")
    if own is None:
        raise RubricError("the record has no `rubric` and no --rubric FILE was given")
    return parse_rubric(own, "record")


# -- checks that need no model -----------------------------------------------------------------------

def check_item(item: Item, record: dict, text: str) -> tuple[bool | None, str]:
    """(met, rationale) for an `answer`, `regex`, `length` or `format` item on response `text`."""
    check = item.check
    if item.kind == "answer":
        return _answer(record, check.get("fallback", True))
    if item.kind == "regex":
        found = compiled_pattern(check["pattern"], check.get("flags", "")).search(text)
        must_match = check.get("must", "match") == "match"
        where = f"found {found.group(0)[:60]!r} at character {found.start()}" if found else "not found"
        return (found is not None) == must_match, f"pattern {where} (must {'match' if must_match else 'not match'})"
    if item.kind == "length":
        unit = check.get("unit", "tokens")
        n = len(text) if unit == "chars" else len(text.split())
        low, high = check.get("min"), check.get("max")
        bounds = f"{'' if low is None else low}..{'' if high is None else high}"
        ok = (low is None or n >= low) and (high is None or n <= high)
        return ok, f"{n} {'characters' if unit == 'chars' else 'whitespace tokens'} (bounds {bounds})"
    if item.kind == "format":
        required = check["require"]
        required = [required] if isinstance(required, str) else list(required)
        failures = [f"{name}: {problem}" for name in required if (problem := format_problem(name, text))]
        return not failures, "; ".join(failures) or "; ".join(_FORMAT_OK[name](text) for name in required)
    raise ValueError(f"check {item.kind!r} needs a judge")


def _answer(record: dict, fallback: bool) -> tuple[bool | None, str]:
    """feedback.outcome when the record has one, else verified now (on a copy: scoring writes only
    feedback.rubric)."""
    from rubricate.generators.outcome import verify_record

    feedback = record.get("feedback") if isinstance(record.get("feedback"), dict) else {}
    outcome = feedback.get("outcome")
    if not isinstance(outcome, dict):
        probe = {k: record.get(k) for k in ("problem", "response", "steps", "reference")}
        outcome = verify_record(probe, fallback=fallback)["feedback"]["outcome"]
    correct = outcome.get("correct")
    said = f"answer {outcome.get('answer')!r}, reference {outcome.get('reference')!r}"
    if correct is not None:
        return bool(correct), f"{said}: {'correct' if correct else 'incorrect'}"
    reference = outcome.get("reference")
    if outcome.get("answer") is None and reference not in (None, ""):
        return False, f"no final answer found (reference {reference!r})"
    return None, f"undecided: {outcome.get('reason') or 'no verdict'}"


_FORMAT_OK = {"boxed": lambda text: f"boxed: \\boxed{{{_last_boxed(text)[:40]}}} found",
              "think": lambda text: "think: one well-formed <think> block"}


def _last_boxed(text: str) -> str:
    from rubricate.answers import last_boxed

    return last_boxed(text) or ""


def format_problem(name: str, text: str) -> str | None:
    """What is wrong with `text` as format `name` requires it, or None when it is well formed."""
    from rubricate.answers import last_boxed

    if name == "boxed":
        return None if last_boxed(text) is not None else "no complete \\boxed{...}"
    opens = [m.start() for m in re.finditer(r"<think>", text)]
    closes = [m.start() for m in re.finditer(r"</think>", text)]
    if not closes:
        return "<think> is never closed" if opens else "no </think>"
    if len(closes) > 1:
        return f"</think> appears {len(closes)} times"
    if len(opens) > 1:
        return f"<think> appears {len(opens)} times"
    if opens and opens[0] > closes[0]:
        return "<think> comes after </think>"
    if opens and text[:opens[0]].strip():
        return "text before <think>"
    if not text[closes[0] + len("</think>"):].strip():
        return "nothing after </think>"
    return None


# -- aggregation -------------------------------------------------------------------------------------

def explicit_score(items: list[Item] | tuple[Item, ...],
                   met: dict[str, bool | None]) -> tuple[float | None, str | None]:
    """clip(sum of met weights / sum of positive weights, 0, 1); None (and why) when an item is undecided."""
    undecided = [item.id for item in items if met.get(item.id) is None]
    if undecided:
        return None, "undecided: " + ", ".join(undecided)
    positive = sum(item.weight for item in items if item.weight > 0)
    earned = sum(item.weight for item in items if met[item.id])
    return round(min(1.0, max(0.0, earned / positive)), 6), None


def implicit_score(rating: int | None) -> float | None:
    """A 1-10 rating on [0, 1]: (rating - 1) / 9."""
    return None if rating is None else round((rating - 1) / 9, 6)


def gate(items: list[Item] | tuple[Item, ...], met: dict[str, bool | None]) -> tuple[str | None, str | None]:
    """accept when every hard item passes, reject when one fails, else None (and which are undecided)."""
    hard = [item for item in items if item.hard]
    if any(item.passes(met.get(item.id)) is False for item in hard):
        return "reject", None
    undecided = [item.id for item in hard if met.get(item.id) is None]
    if undecided:
        return None, "gate undecided: " + ", ".join(undecided)
    return "accept", None


@dataclass
class GroupTally:
    """Gates per group (`--group-by`): rollouts, accepted, rejected, undecided."""

    groups: dict[str, Counter] = field(default_factory=dict)

    def add(self, key: Any, gate_value: str | None) -> None:
        if key is None:
            return
        tally = self.groups.setdefault(str(key), Counter())
        tally["rollouts"] += 1
        tally[gate_value or "undecided"] += 1

    def rows(self) -> list[dict[str, Any]]:
        return [{"group": key, "rollouts": t["rollouts"], "accepted": t["accept"], "rejected": t["reject"],
                 "undecided": t["undecided"], "pass_rate": round(t["accept"] / t["rollouts"], 4),
                 "keeps_an_accepted_rollout": t["accept"] > 0}
                for key, t in self.groups.items()]

    def summary(self) -> dict[str, Any]:
        rows = self.rows()
        rollouts = sum(r["rollouts"] for r in rows)
        accepted = sum(r["accepted"] for r in rows)
        return {"groups": len(rows), "rollouts": rollouts, "accepted": accepted,
                "pass_rate": round(accepted / rollouts, 4) if rollouts else None,
                "groups_keeping_an_accepted_rollout": sum(r["keeps_an_accepted_rollout"] for r in rows),
                "groups_all_rejected": sum(1 for r in rows if r["rejected"] == r["rollouts"]),
                "groups_with_undecided": sum(1 for r in rows if r["undecided"])}


def group_key(record: dict, path: str) -> Any:
    value: Any = record
    for key in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value
