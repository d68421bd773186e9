"""Step labels by alignment to an expert's solution (SRL, arXiv 2510.25992). No model involved.

SRL rewards a model's step by its similarity to the expert's step: difflib's `SequenceMatcher`
ratio, 2M/T (M matched characters, T the characters of both texts). Here each step of the response
is compared with every expert step, and its label is the best ratio; `details.alignment` keeps which
expert step that was, so a user can see what each step was matched with.

The expert steps are `reference.steps`, or `reference.solution` segmented with the same strategy as
the response. A GSM8K solution is read as the `gsm8k` preset reads it: the `#### answer` line is the
answer, not a step, and calculator annotations `<<48/2=24>>` (which no model writes) are dropped.

One deliberate difference from a bare `SequenceMatcher(None, a, b)`: `autojunk` is off. With it on,
any character that fills more than 1% of a text of 200 characters or more (spaces, common letters)
is ignored as junk, so two long steps that say the same thing can score near zero.
"""

from __future__ import annotations

import re
from difflib import SequenceMatcher

from rubricate.generators.step_labels import KIND, entry, failed, first_below, make_provenance, steps_of
from rubricate.generators.steps import segment
from rubricate.records import set_feedback

METHOD = "expert"
REQUIRES = ("problem",)
DEFAULT_THRESHOLD = 0.25  # best ProcessBench F1 (33%) on the 80 bundled examples; a weak detector

_CALCULATOR = re.compile(r"<<[^<>]*>>")


def similarity(a: str, b: str) -> float:
    """SRL's step reward: difflib's ratio of matching characters, 2M/T, in [0, 1]."""
    return SequenceMatcher(None, a, b, autojunk=False).ratio()


def expert_steps(record: dict, strategy: str = "auto") -> tuple[list[str], str] | None:
    """(the expert's steps, where they came from), or None when the record has no expert solution."""
    reference = record.get("reference")
    if not isinstance(reference, dict):
        return None
    steps = reference.get("steps")
    if isinstance(steps, list) and any(isinstance(s, str) and s.strip() for s in steps):
        return [str(s) for s in steps if isinstance(s, str) and s.strip()], "reference.steps"
    solution = reference.get("solution")
    if not isinstance(solution, str) or not solution.strip():
        return None
    if "####" in solution:
        solution = _CALCULATOR.sub("", solution.rpartition("####")[0])
    found = [solution[s:e] for s, e in segment(solution, strategy)]
    return (found, "reference.solution") if found else None


def align(steps: list[str], experts: list[str]) -> list[tuple[int, float]]:
    """For each step, (the index of the most similar expert step, its ratio); ties go to the
    earlier expert step."""
    out = []
    for step in steps:
        best, ratio = 0, -1.0
        for j, expert in enumerate(experts):
            r = similarity(step, expert)
            if r > ratio:
                best, ratio = j, r
        out.append((best, ratio))
    return out


def label_record(record: dict, *, into: str = KIND, strategy: str = "auto",
                 threshold: float = DEFAULT_THRESHOLD) -> dict:
    """Set `feedback.<into>` on `record` (in place) and return it."""
    prov = make_provenance(METHOD, params={"threshold": threshold, "strategy": strategy,
                                           "similarity": "difflib.SequenceMatcher.ratio"})
    steps = steps_of(record, strategy)
    if not steps:
        return set_feedback(record, into, failed(METHOD, 0, "no steps to label", prov))
    found = expert_steps(record, strategy)
    if found is None:
        return set_feedback(record, into, failed(
            METHOD, len(steps), "no expert solution (reference.steps or reference.solution)", prov))
    experts, source = found
    alignment = align(steps, experts)
    labels = [ratio for _, ratio in alignment]
    details = {"source": source, "alignment": [{"expert_step": j, "ratio": round(r, 6)} for j, r in alignment],
               "threshold": threshold}
    if source != "reference.steps":
        details["expert_steps"] = experts
    return set_feedback(record, into, entry(METHOD, labels, first_below(labels, threshold), details, prov))
