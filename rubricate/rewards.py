"""Reward functions for the datasets `rubricate export` writes, in the form TRL's GRPOTrainer calls:
`f(completions, **columns) -> list[float]`, where `completions` are strings (standard prompts) or
one-message lists [{"role": "assistant", "content": ...}] (conversational prompts), and every dataset
column but `prompt` arrives as a keyword argument holding one value per completion.

Nothing here imports more than the standard library at import time, so a trainer can load these
functions without rubricate's model stack.

- `srl_reward` (SRL, Deng et al., arXiv 2510.25992): the output must be a monologue closed by
  </think> and then the step; the reward is difflib.SequenceMatcher(None, step, expert_action)
  .ratio(), i.e. 2M/T with M the characters in matching blocks and T the characters of both texts.
  An output that does not follow the format (no </think>, more than one, or nothing after it) gets -1.
- `answer_reward`: 1.0 when the completion's final answer matches `solution` (rubricate's `verify`:
  \\boxed{}, "The answer is", ... then math-verify; no last-number fallback), else 0.0; None when
  the reference cannot be compared, which GRPOTrainer skips.
"""

from __future__ import annotations

from difflib import SequenceMatcher
from typing import Any

THINK_CLOSE = "</think>"
MALFORMED = -1.0


def _text(completion: Any) -> str:
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        return str(completion[-1].get("content") or "")
    if isinstance(completion, dict):
        return str(completion.get("content") or "")
    return ""


def srl_action(output: str) -> str | None:
    """The step after the monologue, or None when the output does not follow <think>...</think> step."""
    if output.count(THINK_CLOSE) != 1:
        return None
    action = output.split(THINK_CLOSE, 1)[1].strip()
    return action or None


def srl_score(output: str, expert_action: str) -> float:
    action = srl_action(output)
    if action is None:
        return MALFORMED
    return SequenceMatcher(None, action, expert_action.strip()).ratio()


def srl_reward(completions: list, expert_action: list[str], **kwargs: Any) -> list[float]:
    """SRL's step-wise reward for TRL's GRPOTrainer; reads the `expert_action` column."""
    return [srl_score(_text(c), str(e)) for c, e in zip(completions, expert_action, strict=True)]


def answer_reward(completions: list, solution: list[str], **kwargs: Any) -> list[float | None]:
    """1.0 / 0.0 by rubricate's answer check against the `solution` column; None when undecidable."""
    from rubricate.answers import compare, extract_answer

    rewards: list[float | None] = []
    for completion, reference in zip(completions, solution, strict=True):
        found = extract_answer(_text(completion), fallback=False)
        if found is None:
            rewards.append(0.0)
            continue
        result = compare(found.text, str(reference))
        rewards.append(None if result.correct is None else float(result.correct))
    return rewards
