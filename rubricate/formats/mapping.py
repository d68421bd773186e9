"""From an input object to a trace record: `--map`, `--preset`, ids, and `meta` for the rest.

A mapping is `target=source` pairs over dotted paths (`reference.answer=answer`). Record fields
present under their own names are taken as they are. Whatever input field no pair used goes to
`meta` verbatim, so a round trip through rubricate loses nothing. A preset (presets.py) is a mapping
plus a small function for what a mapping cannot say.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from rubricate import schemas
from rubricate.errors import InputError, UsageError
from rubricate.formats.presets import PRESETS
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
