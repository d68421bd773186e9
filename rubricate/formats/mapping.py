"""From an input object to a trace record: `--map`, `--preset`, ids, and `meta` for the rest.

A mapping is `target=source` pairs over dotted paths (`reference.answer=answer`). Record fields
present under their own names are taken as they are. Whatever input field no pair used goes to
`meta` verbatim, so a round trip through rubricate loses nothing. A preset is a mapping plus a small
function for what a mapping cannot say (GSM8K's answer after `#### `, MATH's boxed answer).
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from rubricate import schemas
from rubricate.errors import InputError, UsageError
from rubricate.records import FIELDS, content_id, ordered

_MISSING = object()


def parse_map(spec: str | None) -> dict[str, str]:
    """`problem=question,reference.answer=answer` -> {target: source}."""
    pairs: dict[str, str] = {}
    for part in (spec or "").split(","):
        part = part.strip()
        if not part:
            continue
        target, sep, source = part.partition("=")
        target, source = target.strip(), source.strip()
        if not sep or not target or not source:
            raise UsageError(f"--map: {part!r} is not TARGET=SOURCE",
                             hint="For example --map problem=question,reference.answer=answer")
        if target.split(".")[0] not in FIELDS:
            raise UsageError(f"--map: {target!r} is not a record field",
                             hint=f"Targets start with one of: {', '.join(FIELDS)}")
        pairs[target] = source
    return pairs


def get_path(obj: Any, path: str) -> Any:
    for key in path.split("."):
        if not isinstance(obj, dict) or key not in obj:
            return _MISSING
        obj = obj[key]
    return obj


def set_path(obj: dict, path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for key in parents:
        child = obj.get(key)
        if not isinstance(child, dict):
            child = obj[key] = {}
        obj = child
    obj[last] = value


def pop_path(obj: dict, path: str) -> None:
    """Remove a used leaf, and parents it leaves empty, from a (copied) input object."""
    keys = path.split(".")
    stack = []
    for key in keys[:-1]:
        stack.append((obj, key))
        obj = obj[key]
    obj.pop(keys[-1], None)
    for parent, key in reversed(stack):
        if parent[key] == {}:
            del parent[key]


# --- presets -------------------------------------------------------------------------------------

_CALCULATOR = re.compile(r"<<[^<>]*>>")


def _gsm8k(record: dict) -> None:
    reference = record.get("reference") or {}
    solution = reference.get("solution")
    if isinstance(solution, str) and "####" in solution:
        body, _, answer = solution.rpartition("####")
        # verl's GSM8K preprocessing drops thousands separators from the answer the same way.
        reference.setdefault("answer", answer.strip().replace(",", ""))
        # Expert steps: the solution's lines, without the calculator annotations no model writes.
        reference.setdefault("steps", [_CALCULATOR.sub("", line).strip()
                                       for line in body.splitlines() if line.strip()])


def _math(record: dict) -> None:
    from rubricate.answers import last_boxed

    reference = record.get("reference") or {}
    solution = reference.get("solution")
    if reference.get("answer") in (None, "") and isinstance(solution, str):
        boxed = last_boxed(solution)
        if boxed is not None:
            reference["answer"] = boxed


def _processbench(record: dict) -> None:
    steps = record.get("steps")
    if record.get("response") is None and isinstance(steps, list) and all(isinstance(s, str) for s in steps):
        # The trace as a model wrote it, and where each given step sits in it.
        spans, pos = [], 0
        for step in steps:
            spans.append([pos, pos + len(step)])
            pos += len(step) + 2
        record["response"] = "\n\n".join(steps)
        record["step_spans"] = spans


@dataclass(frozen=True)
class Preset:
    mapping: dict[str, str]
    finish: Callable[[dict], None] | None = None
    help: str = ""


PRESETS: dict[str, Preset] = {
    "gsm8k": Preset({"problem": "question", "reference.solution": "answer"}, _gsm8k,
                    "GSM8K: question/answer; the answer after '#### ', solution lines as expert steps"),
    "math": Preset({"id": "unique_id", "problem": "problem", "reference.solution": "solution",
                    "reference.answer": "answer"}, _math,
                   "MATH / MATH-500: the boxed answer of `solution` when `answer` is absent"),
    "processbench": Preset({"id": "id", "problem": "problem", "steps": "steps"}, _processbench,
                           "ProcessBench: given `steps` (joined into `response`); `label` and "
                           "`final_answer_correct` kept in meta"),
}


@dataclass
class Mapper:
    """Turns input objects into trace records; raises InputError naming the field that is wrong."""

    mapping: dict[str, str] = field(default_factory=dict)
    preset: str | None = None

    def __post_init__(self) -> None:
        finish = None
        pairs: dict[str, str] = {}
        if self.preset is not None:
            if self.preset not in PRESETS:
                raise UsageError(f"--preset: unknown preset {self.preset!r}",
                                 hint=f"Presets: {', '.join(PRESETS)}")
            pairs.update(PRESETS[self.preset].mapping)
            finish = PRESETS[self.preset].finish
        pairs.update(self.mapping)
        self._pairs = pairs
        self._finish = finish
        # Fields taken under their own names unless a pair fills them from elsewhere.
        self._identity = [f for f in FIELDS if f != "meta" and f not in {t.split(".")[0] for t in pairs}]

    def __call__(self, obj: dict, where: str = "") -> dict:
        rest = dict(obj)
        record: dict[str, Any] = {}
        used = []
        for target, source in self._pairs.items():
            # Read every source from the input as given, so two targets may share one source.
            value = get_path(obj, source)
            if value is _MISSING:
                continue
            set_path(record, target, copy.deepcopy(value) if isinstance(value, (dict, list)) else value)
            used.append(source)
        for source in used:
            if get_path(rest, source) is _MISSING:
                continue
            if "." in source:
                rest[source.split(".")[0]] = copy.deepcopy(rest[source.split(".")[0]])
            pop_path(rest, source)
        for name in self._identity:
            if name in rest:
                record[name] = rest.pop(name)
        meta = rest.pop("meta", None)
        meta = dict(meta) if isinstance(meta, dict) else ({} if meta is None else {"meta": meta})
        for key, value in rest.items():
            meta[key if key not in meta else f"input.{key}"] = value
        if meta:
            record["meta"] = meta
        if self._finish is not None:
            self._finish(record)
        self._normalise(record)
        problem_id = record.get("id")
        error = schemas.first_error(record)
        if error is not None:
            path, message = error
            raise InputError(f"field {path}: {message}", field=path, where=where,
                             record_id=str(problem_id) if problem_id is not None else None,
                             hint="Map input fields onto the record with --map TARGET=SOURCE or --preset.")
        return ordered(record)

    @staticmethod
    def _normalise(record: dict) -> None:
        if isinstance(record.get("id"), (int, float)) and not isinstance(record["id"], bool):
            record["id"] = str(record["id"])
        if record.get("id") in (None, ""):
            record["id"] = content_id(record)
        reference = record.get("reference")
        if isinstance(reference, dict) and isinstance(reference.get("answer"), (int, float)) \
                and not isinstance(reference["answer"], bool):
            reference["answer"] = str(reference["answer"])
