"""What several exporters read from a record: the reference answer, the expert solution and steps,
the prompt as chat messages, and which verl reward a problem belongs to."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from rubricate.answers import answer_text
from rubricate.formats.export.errors import Unusable
from rubricate.formats.export.labels import LabelPolicy

# verl's default_compute_score (verl/utils/reward_score/__init__.py) picks the reward by data_source:
# "openai/gsm8k" -> gsm8k.compute_score (the number after "####"), "DigitalLearningGmbH/MATH-lighteval"
# -> math.compute_score (the last \boxed{}). Each with the instruction its preprocessing script appends
# to the question after a space (examples/data_preprocess/gsm8k.py and math_dataset.py).
GSM8K_SOURCE = "openai/gsm8k"
MATH_SOURCE = "DigitalLearningGmbH/MATH-lighteval"
VERL_INSTRUCTIONS = {
    GSM8K_SOURCE: "Let's think step by step and output the final answer after \"####\".",
    MATH_SOURCE: "Let's think step by step and output the final answer within \\boxed{}.",
}
_GSM8K_ANSWER = re.compile(r"^####\s*\S", re.M)


@dataclass(frozen=True)
class ExportOptions:
    policy: LabelPolicy = field(default_factory=LabelPolicy)
    labels: str | None = None  # feedback kind to read step labels from (default: see labels.find)
    instruction: str | None = None  # appended to the problem in the user turn ("" for none)
    system: str | None = None  # a system turn (formats that have one by default take "" to drop it)
    data_source: str | None = None
    soft: bool = False  # openrlhf-prm: the labels as numbers instead of + / -


def reference(record: dict) -> dict:
    ref = record.get("reference")
    return ref if isinstance(ref, dict) else {}


def answer(record: dict) -> str:
    text = answer_text(reference(record).get("answer"))
    if text is None or not text.strip():
        raise Unusable("no reference answer (reference.answer)")
    return text


def solution(record: dict) -> str:
    text = reference(record).get("solution")
    if not isinstance(text, str) or not text.strip():
        steps = reference(record).get("steps")
        if isinstance(steps, list) and steps:
            return "\n".join(str(s) for s in steps)
        raise Unusable("no expert solution (reference.solution)")
    return text


def expert_steps(record: dict) -> list[str]:
    """The expert's solution as steps: `reference.steps`, else `reference.solution` segmented as
    `rubricate steps --strategy auto` would segment a response."""
    ref = reference(record)
    steps = ref.get("steps")
    if isinstance(steps, list) and steps:
        return [str(s) for s in steps]
    text = ref.get("solution")
    if not isinstance(text, str) or not text.strip():
        raise Unusable("no expert solution (reference.steps or reference.solution)")
    from rubricate.generators.steps import segment_record

    trial = {"problem": record.get("problem", ""), "response": text}
    segment_record(trial)
    return [str(s) for s in trial.get("steps") or []]


def is_gsm8k(record: dict) -> bool:
    text = reference(record).get("solution")
    return isinstance(text, str) and _GSM8K_ANSWER.search(text) is not None


def data_source(record: dict, given: str | None) -> str:
    """The verl data_source: given, else the input's own, else GSM8K's or MATH's by the reference."""
    if given:
        return given
    meta = record.get("meta") if isinstance(record.get("meta"), dict) else {}
    if isinstance(meta.get("data_source"), str) and meta["data_source"]:
        return meta["data_source"]
    return GSM8K_SOURCE if is_gsm8k(record) else MATH_SOURCE


def with_instruction(problem: str, instruction: str | None, sep: str = " ") -> str:
    return f"{problem}{sep}{instruction}" if instruction else problem


def user_turn(record: dict, instruction: str | None = None, system: str | None = None,
              sep: str = " ") -> list[dict[str, Any]]:
    problem = record.get("problem")
    if not isinstance(problem, str) or not problem.strip():
        raise Unusable("no problem")
    messages = [{"role": "system", "content": system}] if system else []
    return messages + [{"role": "user", "content": with_instruction(problem, instruction, sep)}]


def outcome(record: dict) -> dict:
    feedback = record.get("feedback") if isinstance(record.get("feedback"), dict) else {}
    entry = feedback.get("outcome")
    return entry if isinstance(entry, dict) else {}


def refinement_sample(record: dict) -> dict:
    """The correct refinement Critique-GRPO would train on: the chosen sample when it is correct,
    else the first correct one."""
    feedback = record.get("feedback") if isinstance(record.get("feedback"), dict) else {}
    entry = feedback.get("refinement")
    if not isinstance(entry, dict):
        raise Unusable("no refinement (run `rubricate refine`)")
    samples = entry.get("samples") if isinstance(entry.get("samples"), list) else []
    chosen = entry.get("chosen")
    if isinstance(chosen, int) and 0 <= chosen < len(samples) and samples[chosen].get("correct") is True \
            and isinstance(samples[chosen].get("text"), str):
        return samples[chosen]
    for sample in samples:
        if sample.get("correct") is True and isinstance(sample.get("text"), str):
            return sample
    raise Unusable(f"none of the {len(samples)} refinements is correct")
