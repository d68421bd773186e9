"""What every step-labelling method writes, and the helpers they share.

`feedback.step_labels` (or `feedback.<--into>`) = {`method`, `labels`, `first_error_step`, `details`,
`provenance`}, plus `error` when the method could not label the record:
- `labels`: one value per step in [0, 1] (1 = good), or null where the method did not label a step;
- `first_error_step`: the index of the earliest bad step, -1 when every labelled step is fine, null
  only together with `error`.

The four methods (`label_judge`, `label_rollout`, `label_expert`, `label_likelihood`) each write this
shape; what is particular to a method goes in `details`. Every entry's provenance names the
generator `step_labels`, so `stats` finds the entries of several methods whatever `--into` named them.
"""

from __future__ import annotations

from typing import Any

from rubricate.generators.steps import segment_record
from rubricate.records import model_provenance, Provenance

KIND = "step_labels"
GENERATOR = "step_labels"
METHODS = ("judge", "rollout", "expert", "likelihood")


def steps_of(record: dict, strategy: str = "auto") -> list[str]:
    """The record's steps, segmenting its response first when it has none (`rubricate steps`)."""
    steps = record.get("steps")
    if not (isinstance(steps, list) and steps):
        segment_record(record, strategy)
        steps = record.get("steps")
    return [str(s) for s in steps] if isinstance(steps, list) else []


def _spans(record: dict, n: int) -> list[list[int]] | None:
    """`step_spans` when they really locate the steps in `response`; None otherwise."""
    response, spans, steps = record.get("response"), record.get("step_spans"), record.get("steps")
    if not (isinstance(response, str) and isinstance(spans, list) and isinstance(steps, list)):
        return None
    if len(spans) != n or len(steps) != n:
        return None
    for (start, end), step in zip(spans, steps):
        if response[start:end] != step:
            return None
    return spans


def prefix_text(record: dict, k: int) -> str:
    """The trace up to and including step k, as written: the response itself when its spans are
    known (original separators kept), else the steps joined by blank lines. k = -1 gives ""."""
    steps = steps_of(record)
    if k < 0:
        return ""
    spans = _spans(record, len(steps))
    if spans is not None:
        return record["response"][:spans[k][1]]
    return "\n\n".join(steps[:k + 1])


def separator_after(record: dict, k: int) -> str:
    """What separates step k from step k+1 in the response (a blank line when unknown); "" after
    the last step."""
    steps = steps_of(record)
    if k >= len(steps) - 1:
        return ""
    spans = _spans(record, len(steps))
    if spans is not None:
        return record["response"][spans[k][1]:spans[k + 1][0]]
    return "\n\n"


def labels_from_first_error(first: int, n: int) -> list[float | None]:
    """A first-error index as labels: steps before it good, it bad, later ones unlabelled
    (ProcessBench's reading: nothing after the first error is judged). -1: all good."""
    if first < 0:
        return [1.0] * n
    return [1.0] * first + [0.0] + [None] * (n - first - 1)


def first_below(labels: list[float | None], threshold: float) -> int:
    """The first labelled step whose label is below `threshold`, or -1."""
    return next((i for i, v in enumerate(labels) if v is not None and v < threshold), -1)


def make_provenance(method: str, llm: Any = None, *, params: dict[str, Any], template: Any = None) -> Provenance:
    return model_provenance(GENERATOR, llm, template=template, params={"method": method, **params})


def entry(method: str, labels: list[float | None], first_error_step: int, details: dict[str, Any],
          prov: Provenance) -> dict[str, Any]:
    return {"method": method, "labels": [None if v is None else round(float(v), 6) for v in labels],
            "first_error_step": first_error_step, "details": details, "provenance": prov}


def failed(method: str, n: int, reason: str, prov: Provenance, *, details: dict[str, Any] | None = None,
           **extra: Any) -> dict[str, Any]:
    """An entry for a record the method could not label: no labels, no first error, and why."""
    return {"method": method, "labels": [None] * n, "first_error_step": None, "details": details or {},
            "error": {"reason": reason, **extra}, "provenance": prov}
