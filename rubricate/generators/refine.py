"""`refine`: the policy rewrites a critiqued response, guided by its critique, and every rewrite is
verified against the reference.

The prompt is Critique-GRPO's refinement prompt (`prompts/refine.jinja`); n samples are drawn per
record, all kept with their outcomes, and one is chosen as Critique-GRPO chooses
(`process_refinement_groups` in its critique_vllm_rollout_spmd.py): the first correct one, else the
one with the highest reward (the first of equals; an undecided reward counts lowest).
"""

from __future__ import annotations

from typing import Any

from rubricate.errors import RubricateError
from rubricate.generators.critique import render_chat, template_values
from rubricate.generators.outcome import verify_record
from rubricate.llm.types import Request, RequestFailed, failure
from rubricate.prompts import Template
from rubricate.records import model_provenance, response_text, set_feedback

KIND = "refinement"
REQUIRES = ("problem",)


def critique_of(record: dict) -> dict | None:
    """The record's critique when it has text to refine from; None otherwise."""
    feedback = record.get("feedback")
    critique = feedback.get("critique") if isinstance(feedback, dict) else None
    if isinstance(critique, dict) and isinstance(critique.get("text"), str) and critique["text"].strip():
        return critique
    return None


def verify_text(record: dict, text: str | None, finish_reason: str | None, *, fallback: bool,
                timeout: float) -> dict[str, Any]:
    """One refinement with its outcome, checked exactly as `verify` checks a response."""
    trial = {"problem": record["problem"], "response": text, "reference": record.get("reference")}
    outcome = verify_record(trial, timeout=timeout, fallback=fallback)["feedback"]["outcome"]
    return {"text": text, "answer": outcome["answer"], "correct": outcome["correct"], "reward": outcome["reward"],
            "reason": outcome["reason"], "finish_reason": finish_reason}


def choose(samples: list[dict[str, Any]]) -> int | None:
    """Critique-GRPO's pick: the first correct sample, else the highest reward (first of equals)."""
    if not samples:
        return None
    for i, sample in enumerate(samples):
        if sample["correct"] is True:
            return i
    rewards = [s["reward"] if s["reward"] is not None else float("-inf") for s in samples]
    return rewards.index(max(rewards))


async def refine_record(record: dict, llm: Any, *, template: Template, samples: int, params: dict[str, Any],
                        fallback: bool = False, timeout: float = 3.0) -> dict:
    """`feedback.refinement` for a record with a critique; a record without one passes through."""
    critique = critique_of(record)
    if critique is None:
        return record
    entry: dict[str, Any] = {"samples": [], "chosen": None, "critique_type": critique.get("type")}
    prov = model_provenance(KIND, llm, template=template, params={**params, "samples": samples, "fallback": fallback})
    try:
        outcome = record["feedback"].get("outcome")
        values = {**template_values(record, outcome if isinstance(outcome, dict) else None),
                  "response": response_text(record) or "",
                  "critique": critique["text"]}
        system, prompt = render_chat(template, values)
        completion = await llm.complete(Request(messages=({"role": "user", "content": prompt},), system=system,
                                                n=samples, **params))
    except (RequestFailed, RubricateError) as exc:
        entry["error"] = failure(exc)
    else:
        finish = list(completion.finish_reasons) + [None] * (len(completion.texts) - len(completion.finish_reasons))
        entry["samples"] = [verify_text(record, text, reason, fallback=fallback, timeout=timeout)
                            for text, reason in zip(completion.texts, finish)]
        entry["chosen"] = choose(entry["samples"])
    entry["provenance"] = prov
    return set_feedback(record, KIND, entry)
