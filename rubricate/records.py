"""The trace record: plain dicts, shaped by `schemas/trace.schema.json`.

A record is what every command reads and writes. Fields a generator owns are written only by it:
`steps` by the segmenter, `feedback.<kind>` by the generator of that kind. Everything in the input
that the mapping did not use lands in `meta`, verbatim, so a round trip loses nothing.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, TypedDict

from rubricate import __version__

# Top-level fields of a record, in the order they are written out.
FIELDS = ("id", "problem", "response", "steps", "step_spans", "reference", "group", "rubric",
          "feedback", "meta")


class Provenance(TypedDict, total=False):
    generator: str
    version: str
    model: str | None
    backend: str | None
    template: str | None
    template_hash: str | None
    params: dict[str, Any]


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: the text that hashes identically everywhere."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_id(record: dict) -> str:
    """A stable id from what identifies a trace: its problem, response (or steps) and reference answer.

    Rerunning on the same input gives the same id; two rollouts of one problem get different ids.
    """
    reference = record.get("reference") or {}
    key = {
        "problem": record.get("problem"),
        "response": record.get("response"),
        "steps": None if record.get("response") is not None else record.get("steps"),
        "answer": reference.get("answer") if isinstance(reference, dict) else None,
    }
    return "sha256:" + hashlib.sha256(canonical_json(key).encode()).hexdigest()[:16]


def template_hash(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:16]


def provenance(generator: str, *, params: dict[str, Any] | None = None, model: str | None = None,
               backend: str | None = None, template: str | None = None,
               template_text: str | None = None) -> Provenance:
    """Where a feedback entry came from. No timestamps: a rerun must write the same bytes."""
    return {
        "generator": generator,
        "version": __version__,
        "model": model,
        "backend": backend,
        "template": template,
        "template_hash": template_hash(template_text) if template_text is not None else None,
        "params": dict(params or {}),
    }


def model_provenance(generator: str, llm: Any, *, params: dict[str, Any], template: Any = None) -> Provenance:
    """Provenance of an entry a model wrote: the --model string as given (the engine's `spec`), the
    backend that served it, and the template (anything with `name` and `text`) it was asked with."""
    return provenance(generator, model=getattr(llm, "spec", None) or getattr(llm, "model", None),
                      backend=getattr(getattr(llm, "backend", None), "name", None),
                      template=getattr(template, "name", None), template_text=getattr(template, "text", None),
                      params=params)


def set_feedback(record: dict, kind: str, entry: dict) -> dict:
    """Add or replace one feedback entry, leaving every other kind alone."""
    feedback = record.get("feedback")
    if not isinstance(feedback, dict):
        feedback = {}
    feedback[kind] = entry
    record["feedback"] = feedback
    return record


def response_text(record: dict) -> str | None:
    """The trace as text: `response`, or the steps joined by blank lines when only steps are given."""
    response = record.get("response")
    if isinstance(response, str):
        return response
    steps = record.get("steps")
    if isinstance(steps, list) and steps:
        return "\n\n".join(str(s) for s in steps)
    return None


def ordered(record: dict) -> dict:
    """The record with its known fields first, in schema order, then anything else as it came."""
    out = {k: record[k] for k in FIELDS if k in record}
    out.update((k, v) for k, v in record.items() if k not in out)
    return out
