"""Step labels for export: where they come from, and the policy that turns them into a consumer's.

Where: `--labels NAME` reads `feedback.NAME`; by default the first of `feedback.step_labels`
(`rubricate label`), `feedback.source_labels` (an importer: prm800k, math-shepherd) and ProcessBench's
`meta.label` (the index of the earliest wrong step, -1 for none; steps after it are unlabelled).

The policy, explicit and the same for every step-labelled format:
- `threshold`: a label counts as a good step when it is >= the threshold (labels are in [0, 1]);
- `after_error`: steps after the first bad step are kept with their own labels (`keep`), cut off
  (`drop`: the trace ends at its first error), or all labelled bad (`bad`: "once wrong, wrong");
- `unlabelled`: a step with no label (null) cuts the trace before it (`drop`: a later step cannot be
  kept without the steps it follows), is labelled `bad` or `good`, or sends the record to the rejects
  (`reject`).
Each format's default is its consumer's convention (see `FORMATS` in `__init__`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from rubricate.formats.export.errors import Unusable

SOURCES = ("step_labels", "source_labels")
AFTER_ERROR = ("keep", "drop", "bad")
UNLABELLED = ("drop", "bad", "good", "reject")


@dataclass(frozen=True)
class LabelPolicy:
    threshold: float = 0.5
    after_error: str = "keep"
    unlabelled: str = "drop"

    def good(self, value: float) -> bool:
        return value >= self.threshold

    def merged(self, threshold: float | None, after_error: str | None, unlabelled: str | None) -> "LabelPolicy":
        """This policy with whatever the user set on the command line."""
        changes = {k: v for k, v in (("threshold", threshold), ("after_error", after_error),
                                     ("unlabelled", unlabelled)) if v is not None}
        return replace(self, **changes)


def _usable(entry: object) -> bool:
    return isinstance(entry, dict) and isinstance(entry.get("labels"), list) and not entry.get("error")


def processbench_entry(record: dict) -> dict | None:
    """ProcessBench's human label (`meta.label`, an int) as a step-label entry."""
    meta = record.get("meta") if isinstance(record.get("meta"), dict) else {}
    first = meta.get("label")
    steps = record.get("steps")
    if isinstance(first, bool) or not isinstance(first, int) or not isinstance(steps, list):
        return None
    n = len(steps)
    if not -1 <= first < n:
        return None
    labels = [1.0] * n if first < 0 else [1.0] * first + [0.0] + [None] * (n - first - 1)
    return {"method": "processbench", "labels": labels, "first_error_step": first}


def find(record: dict, name: str | None = None) -> tuple[str, dict]:
    """(source name, entry) of the step labels to export; Unusable when there are none."""
    feedback = record.get("feedback") if isinstance(record.get("feedback"), dict) else {}
    if name is not None:
        if name == "processbench":
            entry = processbench_entry(record)
        else:
            entry = feedback.get(name)
        if _usable(entry):
            return name, entry  # type: ignore[return-value]
        why = feedback[name]["error"].get("reason") if isinstance(feedback.get(name), dict) and \
            isinstance(feedback[name].get("error"), dict) else "absent"
        raise Unusable(f"no step labels in feedback.{name} ({why})")
    for source in SOURCES:
        if _usable(feedback.get(source)):
            return source, feedback[source]
    entry = processbench_entry(record)
    if entry is not None:
        return "processbench", entry
    failed = [s for s in SOURCES if isinstance(feedback.get(s), dict)]
    if failed:
        raise Unusable(f"feedback.{failed[0]} has no labels (labelling failed)")
    raise Unusable("no step labels (run `rubricate label`, or import labelled data with --preset)")


def gold(record: dict) -> tuple[str, dict] | None:
    """Labels from people or from the source data, never from a judge: an importer's, else ProcessBench's."""
    feedback = record.get("feedback") if isinstance(record.get("feedback"), dict) else {}
    if _usable(feedback.get("source_labels")):
        return "source_labels", feedback["source_labels"]
    entry = processbench_entry(record)
    return ("processbench", entry) if entry is not None else None


def steps_of(record: dict) -> list[str]:
    steps = record.get("steps")
    if not isinstance(steps, list) or not steps:
        raise Unusable("no steps (run `rubricate steps`, or give them in the input)")
    return [str(s) for s in steps]


def first_bad(labels: list, policy: LabelPolicy) -> int | None:
    return next((i for i, v in enumerate(labels) if v is not None and not policy.good(v)), None)


def apply(steps: list[str], labels: list, policy: LabelPolicy) -> list[tuple[str, float]]:
    """(step, label) pairs after the policy; Unusable when nothing is left or a rule rejects the record."""
    if len(labels) != len(steps):
        raise Unusable(f"{len(labels)} labels for {len(steps)} steps")
    bad = first_bad(labels, policy)
    out: list[tuple[str, float]] = []
    for i, (step, value) in enumerate(zip(steps, labels)):
        if bad is not None and i > bad:
            if policy.after_error == "drop":
                break
            if policy.after_error == "bad":
                value = 0.0
        if value is None:
            if policy.unlabelled == "drop":
                break
            if policy.unlabelled == "reject":
                raise Unusable(f"step {i} is unlabelled (--unlabelled reject)")
            value = 1.0 if policy.unlabelled == "good" else 0.0
        out.append((step, float(value)))
    if not out:
        raise Unusable("no labelled step left after the label policy")
    return out


def labelled_steps(record: dict, policy: LabelPolicy, source: str | None = None) -> list[tuple[str, float]]:
    _, entry = find(record, source)
    return apply(steps_of(record), entry["labels"], policy)
