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
    # Each kind of feedback with a summary of its own: add(record) and summary() -> {section: ...}.
    parts: list = field(default_factory=lambda: [CritiqueTally(), LabelAgreement(), RubricTally()])

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
        for part in self.parts:
            part.add(record)

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
        for part in self.parts:
            out.update(part.summary())
        return out


def _reason_kind(reason: Any) -> str:
    """Group free-text reasons by their first clause so the table stays short."""
    if not isinstance(reason, str) or not reason:
        return "unknown"
    return reason.split(":")[0].split("(")[0].strip()[:60]


@dataclass
class CritiqueTally:
    """feedback.critique and feedback.refinement: verdicts and directives, per group how many rollouts
    failed and how many of those got a directive, and how many failed responses a refinement fixed."""

    types: Counter = field(default_factory=Counter)
    verdicts: Counter = field(default_factory=Counter)  # correct / incorrect / none (a reason) / error
    with_first_error_step: int = 0
    with_directive: int = 0
    groups: dict = field(default_factory=dict)  # group -> [critiqued, failed, failed with a directive]
    refinement: Counter = field(default_factory=Counter)

    def add(self, record: dict) -> None:
        feedback = record.get("feedback") if isinstance(record.get("feedback"), dict) else {}
        entry = feedback.get("critique")
        if isinstance(entry, dict):
            self.types[str(entry.get("type"))] += 1
            verdict = entry.get("verdict")
            self.verdicts[verdict if verdict in ("correct", "incorrect") else
                          "error" if entry.get("error") else "none"] += 1
            self.with_first_error_step += entry.get("first_error_step") is not None
            self.with_directive += bool(entry.get("directive"))
            if record.get("group") is not None:
                tally = self.groups.setdefault(str(record["group"]), [0, 0, 0])
                tally[0] += 1
                tally[1] += verdict == "incorrect"
                tally[2] += verdict == "incorrect" and bool(entry.get("directive"))
        refined = feedback.get("refinement")
        if isinstance(refined, dict):
            r = self.refinement
            r["refined"] += 1
            r["errors"] += bool(refined.get("error"))
            samples = refined.get("samples") if isinstance(refined.get("samples"), list) else []
            r["samples"] += len(samples)
            r["samples_correct"] += sum(1 for s in samples if isinstance(s, dict) and s.get("correct") is True)
            chosen = refined.get("chosen")
            good = isinstance(chosen, int) and 0 <= chosen < len(samples) and samples[chosen].get("correct") is True
            r["chosen_correct"] += good
            outcome = feedback.get("outcome") if isinstance(feedback.get("outcome"), dict) else {}
            if outcome.get("correct") is False:
                r["of_incorrect"] += 1
                r["fixed"] += good

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.types:
            out["critique"] = {"critiques": sum(self.types.values()), "types": dict(self.types.most_common()),
                               "verdicts": {k: self.verdicts[k] for k in ("correct", "incorrect", "none", "error")},
                               "with_first_error_step": self.with_first_error_step,
                               "with_directive": self.with_directive}
            if self.groups:
                tallies = self.groups.values()
                out["critique"]["groups"] = {
                    "groups": len(self.groups),
                    "groups_with_a_failed_rollout": sum(1 for t in tallies if t[1]),
                    "failed_rollouts": sum(t[1] for t in tallies),
                    "failed_rollouts_with_a_directive": sum(t[2] for t in tallies),
                    "groups_where_every_failed_rollout_got_a_directive":
                        sum(1 for t in tallies if t[1] and t[1] == t[2]),
                }
        if self.refinement:
            r = self.refinement
            out["refinement"] = {k: r[k] for k in ("refined", "errors", "samples", "samples_correct", "chosen_correct")}
            out["refinement"]["fixed"] = {"of_incorrect": r["of_incorrect"], "fixed": r["fixed"]}
        return out


# --- step-label agreement (issue 5) ----------------------------------------------------------------

def step_label_entries(record: dict) -> dict[str, dict]:
    """The record's step-label entries by feedback name: those `rubricate label` wrote (provenance
    generator `step_labels`), whatever `--into` named them, leaving out failed ones."""
    feedback = record.get("feedback") if isinstance(record.get("feedback"), dict) else {}
    return {name: entry for name, entry in sorted(feedback.items())
            if isinstance(entry, dict) and isinstance(entry.get("provenance"), dict)
            and entry["provenance"].get("generator") == "step_labels" and not entry.get("error")
            and isinstance(entry.get("labels"), list)}


def label_agreement(a: dict, b: dict, threshold: float = 0.5) -> tuple[int, int, bool | None]:
    """Two step-label entries of one record: (steps both labelled, of those the steps on which they
    agree, labels read as good when >= threshold; whether their first errors are the same, None when
    either has none)."""
    both = [(x, y) for x, y in zip(a["labels"], b["labels"]) if x is not None and y is not None]
    agree = sum((x >= threshold) == (y >= threshold) for x, y in both)
    fa, fb = a.get("first_error_step"), b.get("first_error_step")
    return len(both), agree, (None if fa is None or fb is None else fa == fb)


@dataclass
class LabelAgreement:
    """Per pair of step-label entries found on the same records: per-step and first-error agreement."""

    pairs: dict = field(default_factory=dict)  # "a~b" -> Counter

    def add(self, record: dict) -> None:
        entries = step_label_entries(record)
        names = list(entries)
        for i, first in enumerate(names):
            for second in names[i + 1:]:
                steps, agree, same_first = label_agreement(entries[first], entries[second])
                tally = self.pairs.setdefault(f"{first}~{second}", Counter())
                tally["records"] += 1
                tally["steps"] += steps
                tally["steps_agree"] += agree
                if same_first is not None:
                    tally["first_error_compared"] += 1
                    tally["first_error_agree"] += same_first
                tally[f"methods:{entries[first].get('method')}~{entries[second].get('method')}"] += 1

    def summary(self) -> dict[str, Any]:
        out = {}
        for pair, t in sorted(self.pairs.items()):
            methods = [k.split(":", 1)[1] for k in t if k.startswith("methods:")]
            out[pair] = {"records": t["records"], "methods": methods[0] if len(methods) == 1 else methods,
                         "steps_compared": t["steps"],
                         "step_agreement": round(t["steps_agree"] / t["steps"], 4) if t["steps"] else None,
                         "first_error_agreement": (round(t["first_error_agree"] / t["first_error_compared"], 4)
                                                   if t["first_error_compared"] else None)}
        return {"step_label_agreement": out} if out else {}


# --- rubric gates and the contamination probe (issue 6) ----------------------------------------------

@dataclass
class RubricTally:
    """feedback.rubric: gates and scores, and per group (the record's `group`) how many rollouts the
    gate accepts; feedback.contamination: the dataset's exact-match rate, mean ROUGE-L, and how often
    the truncated problem still reached the reference answer."""

    gates: Counter = field(default_factory=Counter)  # accept / reject / undecided
    modes: Counter = field(default_factory=Counter)
    score_sum: float = 0.0  # running sums, not lists: memory must not grow with the records
    score_count: int = 0
    errors: int = 0
    groups: dict = field(default_factory=dict)  # group -> [rollouts, accepted, undecided]
    probe: Counter = field(default_factory=Counter)
    rouge_sum: float = 0.0
    rouge_count: int = 0
    fractions: Counter = field(default_factory=Counter)

    def add(self, record: dict) -> None:
        feedback = record.get("feedback") if isinstance(record.get("feedback"), dict) else {}
        entry = feedback.get("rubric")
        if isinstance(entry, dict):
            gate = entry.get("gate")
            self.gates[gate if gate in ("accept", "reject") else "undecided"] += 1
            self.modes[str(entry.get("mode"))] += 1
            self.errors += bool(entry.get("error"))
            if isinstance(entry.get("score"), (int, float)):
                self.score_sum += float(entry["score"])
                self.score_count += 1
            if record.get("group") is not None:
                tally = self.groups.setdefault(str(record["group"]), [0, 0, 0])
                tally[0] += 1
                tally[1] += gate == "accept"
                tally[2] += gate not in ("accept", "reject")
        probe = feedback.get("contamination")
        if isinstance(probe, dict):
            p = self.probe
            p["probed"] += 1
            p["errors"] += bool(probe.get("error"))
            self.fractions[str(probe.get("fraction"))] += 1
            if isinstance(probe.get("exact_match"), bool):
                p["compared"] += 1
                p["exact_match"] += probe["exact_match"]
            if isinstance(probe.get("rouge_l"), (int, float)):
                self.rouge_sum += float(probe["rouge_l"])
                self.rouge_count += 1
            answer = probe.get("answer") if isinstance(probe.get("answer"), dict) else None
            if answer is not None and answer.get("correct") is not None:
                p["answered"] += 1
                p["answer_correct"] += answer["correct"] is True

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.gates:
            n = sum(self.gates.values())
            out["rubric"] = {"scored": n, "modes": dict(self.modes.most_common()),
                             "gates": {k: self.gates[k] for k in ("accept", "reject", "undecided")},
                             "accept_rate": round(self.gates["accept"] / n, 4), "errors": self.errors,
                             "score_mean": round(self.score_sum / self.score_count, 4) if self.score_count else None}
            if self.groups:
                rates = Counter(round(t[1] / t[0], 4) for t in self.groups.values())
                out["rubric"]["groups"] = {
                    "groups": len(self.groups),
                    "groups_keeping_an_accepted_rollout": sum(1 for t in self.groups.values() if t[1]),
                    "groups_all_rejected": sum(1 for t in self.groups.values() if not t[1] and not t[2]),
                    "groups_with_undecided": sum(1 for t in self.groups.values() if t[2]),
                    "pass_rate_per_group": _quantiles(rates),
                }
        if self.probe:
            p = self.probe
            out["contamination"] = {
                "probed": p["probed"], "errors": p["errors"],
                "fractions": dict(self.fractions.most_common()),
                "exact_match": p["exact_match"], "compared": p["compared"],
                "exact_match_rate": round(p["exact_match"] / p["compared"], 4) if p["compared"] else None,
                "rouge_l_mean": round(self.rouge_sum / self.rouge_count, 4) if self.rouge_count else None,
                "answered": p["answered"], "answer_correct": p["answer_correct"],
                "answer_accuracy": round(p["answer_correct"] / p["answered"], 4) if p["answered"] else None,
            }
        return out
