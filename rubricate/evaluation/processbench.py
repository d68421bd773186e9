"""ProcessBench's metric (QwenLM/ProcessBench, arXiv 2412.06559) on any records with gold labels.

A record's gold `label` is the index of its earliest erroneous step, -1 when every step is right
(the `processbench` preset keeps it in `meta.label`; a top-level `label` is read too). A prediction
is the same kind of index, from a step-label entry's `first_error_step` or a critique's. As in
ProcessBench's `code/run_eval.py`:

- accuracy on erroneous samples = share of records with label != -1 whose prediction equals it;
- accuracy on correct samples = share of records with label == -1 predicted -1;
- F1 = their harmonic mean, 2 * a * b / (a + b);

all in percent, as ProcessBench prints them. A missing or unreadable prediction counts as wrong
(ProcessBench's `None`). Where a group has no samples its accuracy is null, as is F1; where both
accuracies are 0, F1 is 0 (ProcessBench would divide by zero).

The confusion summary says how the misses went wrong: on erroneous samples, `too_early` (an error
predicted before the real one), `too_late` (after it), `missed` (predicted -1); on correct samples,
`false_alarm` (an error predicted); on both, `no_prediction`.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

_SUBSET = re.compile(r"^(.+?)-\d+$")


def _index(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < -1:
        return None
    return value


def gold_label(record: dict) -> int | None:
    meta = record.get("meta") if isinstance(record.get("meta"), dict) else {}
    value = meta.get("label", record.get("label"))
    return _index(value)


def predicted(record: dict, source: str = "step_labels") -> int | None:
    """The predicted first-error index, or None when the record has none (missing, failed, unreadable).

    `source` names a feedback entry with `first_error_step`. For `critique`, whose first error is
    null when it found none, a null with the verdict "correct" means -1.
    """
    feedback = record.get("feedback") if isinstance(record.get("feedback"), dict) else {}
    entry = feedback.get(source)
    if not isinstance(entry, dict) or entry.get("error"):
        return None
    first = _index(entry.get("first_error_step"))
    if first is None and source == "critique" and entry.get("first_error_step") is None \
            and entry.get("verdict") == "correct":
        return -1
    return first


def subset_of(record: dict) -> str:
    """ProcessBench's subset (gsm8k, math, olympiadbench, omnimath): `meta.subset`, else the id's prefix."""
    meta = record.get("meta") if isinstance(record.get("meta"), dict) else {}
    if isinstance(meta.get("subset"), str):
        return meta["subset"]
    m = _SUBSET.match(str(record.get("id", "")))
    return m.group(1) if m else "unknown"


def f1(a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return None
    return 2 * a * b / (a + b) if a + b else 0.0


@dataclass
class Tally:
    erroneous: int = 0
    erroneous_right: int = 0
    correct: int = 0
    correct_right: int = 0
    confusion: Counter = field(default_factory=Counter)

    def add(self, gold: int, pred: int | None) -> None:
        if gold == -1:
            self.correct += 1
            if pred == -1:
                self.correct_right += 1
            else:
                self.confusion["no_prediction" if pred is None else "false_alarm"] += 1
            return
        self.erroneous += 1
        if pred == gold:
            self.erroneous_right += 1
        elif pred is None:
            self.confusion["no_prediction"] += 1
        elif pred == -1:
            self.confusion["missed"] += 1
        else:
            self.confusion["too_early" if pred < gold else "too_late"] += 1

    def metrics(self) -> dict[str, Any]:
        a = 100 * self.erroneous_right / self.erroneous if self.erroneous else None
        b = 100 * self.correct_right / self.correct if self.correct else None
        return {"samples": self.erroneous + self.correct, "erroneous": self.erroneous, "correct": self.correct,
                "error_accuracy": a, "correct_accuracy": b, "f1": f1(a, b),
                "confusion": {k: self.confusion[k] for k in
                              ("too_early", "too_late", "missed", "false_alarm", "no_prediction")}}


@dataclass
class Evaluation:
    source: str = "step_labels"
    records: int = 0
    skipped: Counter = field(default_factory=Counter)
    overall: Tally = field(default_factory=Tally)
    subsets: dict[str, Tally] = field(default_factory=dict)
    generators: dict[str, Tally] = field(default_factory=dict)

    def add(self, record: dict) -> None:
        self.records += 1
        gold = gold_label(record)
        if gold is None:
            self.skipped["no gold label"] += 1
            return
        pred = predicted(record, self.source)
        meta = record.get("meta") if isinstance(record.get("meta"), dict) else {}
        generator = str(meta.get("generator", "unknown"))
        for tally in (self.overall, self.subsets.setdefault(subset_of(record), Tally()),
                      self.generators.setdefault(generator, Tally())):
            tally.add(gold, pred)

    def summary(self) -> dict[str, Any]:
        return {"source": self.source, "records": self.records, "skipped": dict(self.skipped),
                "overall": self.overall.metrics(),
                "by_subset": {k: t.metrics() for k, t in sorted(self.subsets.items())},
                "by_generator": {k: t.metrics() for k, t in sorted(self.generators.items())}}


def evaluate(records, source: str = "step_labels") -> dict[str, Any]:
    ev = Evaluation(source)
    for record in records:
        ev.add(record)
    return ev.summary()
