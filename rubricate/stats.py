"""Dataset summaries in one streaming pass: memory grows with distinct groups and keys, not records."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

TRACKED_FIELDS = ("id", "problem", "response", "steps", "reference.answer", "reference.solution",
                  "reference.steps", "group", "meta")


def _present(record: dict, path: str) -> bool:
    value: Any = record
    for key in path.split("."):
        if not isinstance(value, dict) or value.get(key) in (None, "", []):
            return False
        value = value[key]
    return True


def _quantiles(hist: Counter) -> dict[str, float | int | None]:
    n = sum(hist.values())
    if not n:
        return {"n": 0, "min": None, "mean": None, "median": None, "max": None}
    values = sorted(hist)
    total = sum(v * c for v, c in hist.items())
    half, seen, median = (n + 1) / 2, 0, values[0]
    for v in values:
        seen += hist[v]
        if seen >= half:
            median = v
            break
    return {"n": n, "min": values[0], "mean": round(total / n, 3), "median": median, "max": values[-1]}


@dataclass
class Stats:
    records: int = 0
    rejected: int = 0
    fields: Counter = field(default_factory=Counter)
    meta_keys: Counter = field(default_factory=Counter)
    steps: Counter = field(default_factory=Counter)  # steps per trace -> traces
    feedback: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)  # feedback kind -> entries with an `error`
    outcome: Counter = field(default_factory=Counter)  # correct / incorrect / undecided
    outcome_methods: Counter = field(default_factory=Counter)
    undecided_reasons: Counter = field(default_factory=Counter)
    groups: dict = field(default_factory=dict)  # group -> [rollouts, correct]

    def add(self, record: dict) -> None:
        self.records += 1
        self.fields.update(f for f in TRACKED_FIELDS if _present(record, f))
        if isinstance(record.get("meta"), dict):
            self.meta_keys.update(record["meta"].keys())
        if isinstance(record.get("steps"), list):
            self.steps[len(record["steps"])] += 1
        feedback = record.get("feedback") if isinstance(record.get("feedback"), dict) else {}
        for kind, entry in feedback.items():
            self.feedback[kind] += 1
            if isinstance(entry, dict) and entry.get("error"):
                self.errors[kind] += 1
        outcome = feedback.get("outcome")
        correct = None
        if isinstance(outcome, dict):
            correct = outcome.get("correct")
            self.outcome[{True: "correct", False: "incorrect"}.get(correct, "undecided")] += 1
            self.outcome_methods[outcome.get("method") or "none"] += 1
            if correct is None:
                self.undecided_reasons[_reason_kind(outcome.get("reason"))] += 1
        group = record.get("group")
        if group is not None:
            tally = self.groups.setdefault(str(group), [0, 0])
            tally[0] += 1
            tally[1] += correct is True

    def summary(self) -> dict[str, Any]:
        decided = self.outcome["correct"] + self.outcome["incorrect"]
        with_outcome = decided + self.outcome["undecided"]
        out: dict[str, Any] = {
            "records": self.records,
            "rejected": self.rejected,
            "fields": {f: self.fields[f] for f in TRACKED_FIELDS},
            "meta_keys": dict(self.meta_keys.most_common(20)),
            "steps_per_trace": _quantiles(self.steps),
            "feedback": dict(sorted(self.feedback.items())),
            "errors": dict(sorted(self.errors.items())),
        }
        if with_outcome:
            out["outcome"] = {
                "correct": self.outcome["correct"],
                "incorrect": self.outcome["incorrect"],
                "undecided": self.outcome["undecided"],
                "accuracy": round(self.outcome["correct"] / decided, 4) if decided else None,
                "accuracy_all": round(self.outcome["correct"] / with_outcome, 4),
                "methods": dict(self.outcome_methods.most_common()),
                "undecided_reasons": dict(self.undecided_reasons.most_common()),
            }
        if self.groups:
            sizes = Counter(t[0] for t in self.groups.values())
            out["groups"] = {
                "groups": len(self.groups),
                "rollouts_per_group": _quantiles(sizes and Counter({k: v for k, v in sizes.items()})),
                "groups_with_a_correct_rollout": sum(1 for t in self.groups.values() if t[1] > 0),
                "groups_all_incorrect": sum(1 for t in self.groups.values() if t[1] == 0),
            }
        return out


def _reason_kind(reason: Any) -> str:
    """Group free-text reasons by their first clause so the table stays short."""
    if not isinstance(reason, str) or not reason:
        return "unknown"
    return reason.split(":")[0].split("(")[0].strip()[:60]
