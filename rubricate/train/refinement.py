"""Critique-GRPO's critique-and-refine step, as the trainer needs it, in plain Python (no torch):
what a dataset row says about its problem, the reward that verifies a rollout, the critics, the
refinement prompt, and the pick among refinements.

Rows are a `critique-grpo` export's (`prompt`, `reward_model` {ground_truth, question}, `target`) or a
`trl-grpo` export's (`prompt`, `solution`). As in Critique-GRPO's released code
(zhangxy-2019/critique-GRPO @ e8f03a2, verl/verl/critique_grpo/critique_vllm_rollout_spmd.py,
CRITIQUEvLLMRollout.generate_sequences):
- the critique of a rollout is `simple_gt` by default ("The generated solution is incorrect, the ground
  truth is X."; the strings of rubricate.generators.critique), or a chain-of-thought critique by a critic
  model (its `text` critiques, here through rubricate's model seam with Critique-GRPO's critique prompt);
- the refinement prompt is its refinement prompt (`prompts/refine.jinja`) in the policy's chat template;
- refinements are verified like rollouts, and the one kept per group is the first correct one, else the
  highest reward (`process_refinement_groups`; rubricate.generators.refine.choose).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from rubricate.generators.critique import GROUND_TRUTH, render_chat
from rubricate.generators.refine import choose
from rubricate.prompts import bundled
from rubricate.rewards import answer_reward


@dataclass(frozen=True)
class Rollout:
    question: str
    response: str
    ground_truth: str
    target: str | None = None  # the expert solution, for a critic that compares against it


def ground_truth(row: dict) -> str | None:
    if row.get("solution") is not None:
        return str(row["solution"])
    model = row.get("reward_model")
    if isinstance(model, dict) and model.get("ground_truth") is not None:
        return str(model["ground_truth"])
    return None


def question(row: dict) -> str:
    """The raw problem: Critique-GRPO's `reward_model.question`, else the last user turn, else the prompt."""
    model = row.get("reward_model")
    if isinstance(model, dict) and isinstance(model.get("question"), str) and model["question"].strip():
        return model["question"]
    prompt = row.get("prompt")
    if isinstance(prompt, list):
        users = [m.get("content") for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
        if users and isinstance(users[-1], str):
            return users[-1]
    return str(prompt or "")


def target(row: dict) -> str | None:
    value = row.get("target")
    if isinstance(value, list) and value and isinstance(value[0], dict) and isinstance(value[0].get("content"), str):
        return value[0]["content"]
    return value if isinstance(value, str) else None


def verified_answer_reward(completions: list, solution: list | None = None, reward_model: list | None = None,
                           **kwargs: Any) -> list[float | None]:
    """rubricate.rewards.answer_reward against each row's ground truth, from `solution` (trl-grpo) or
    `reward_model.ground_truth` (critique-grpo): 1.0 right, 0.0 wrong, None when undecidable."""
    n = len(completions)
    solution, reward_model = solution or [None] * n, reward_model or [None] * n
    truths = [ground_truth({"solution": s, "reward_model": m}) for s, m in zip(solution, reward_model)]
    known = [i for i, t in enumerate(truths) if t is not None]
    rewards: list[float | None] = [None] * n
    scored = answer_reward([completions[i] for i in known], [truths[i] for i in known])
    for i, r in zip(known, scored):
        rewards[i] = r
    return rewards


class GroundTruthCritic:
    """Critique-GRPO's default `simple_gt` critique of a failed rollout."""

    name = "ground-truth"

    def __call__(self, rollouts: list[Rollout]) -> list[str | None]:
        return [GROUND_TRUTH[False] + r.ground_truth + "." for r in rollouts]

    def close(self) -> None:
        pass


class ModelCritic:
    """A chain-of-thought critique by a critic model through rubricate's engine (cache, retries,
    concurrency), with Critique-GRPO's critique prompt by default. A critique that fails or cannot be
    read is None: the trainer falls back to the ground-truth critique for that rollout."""

    name = "cot"

    def __init__(self, model: str, *, api_base: str | None = None, template: str = "critique_grpo",
                 max_tokens: int | None = None, concurrency: int = 16, timeout: float = 120.0):
        from rubricate.llm.backends import parse_model

        parse_model(model)  # a bad spec is a usage error before any training starts
        self.model, self.api_base, self.concurrency, self.timeout = model, api_base, concurrency, timeout
        self.template = _template(template)
        self.repair = bundled("critique_repair")
        self.params = {"max_tokens": max_tokens} if max_tokens else {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._engine: Any = None

    async def _start(self) -> Any:
        from rubricate.llm.backends import make_backend
        from rubricate.llm.engine import Engine, EngineConfig

        engine = Engine(make_backend(self.model, api_base=self.api_base, timeout=self.timeout,
                                     concurrency=self.concurrency),
                        EngineConfig(concurrency=self.concurrency, timeout=self.timeout), spec=self.model)
        return engine

    def __call__(self, rollouts: list[Rollout]) -> list[str | None]:
        from rubricate.generators.critique import cot_record

        if not rollouts:
            return []
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._engine = self._loop.run_until_complete(self._start())
        records = [{"id": f"rollout-{i}", "problem": r.question, "response": r.response,
                    "reference": {"answer": r.ground_truth, "solution": r.target},
                    "feedback": {"outcome": {"correct": False, "reference": r.ground_truth}}}
                   for i, r in enumerate(rollouts)]

        async def all_of() -> list[dict]:
            return await asyncio.gather(*(cot_record(rec, self._engine, template=self.template, repair=self.repair,
                                                     params=self.params, only="all") for rec in records))

        done = self._loop.run_until_complete(all_of())
        texts = []
        for record in done:
            entry = record["feedback"].get("critique") or {}
            text = entry.get("text")
            texts.append(text if isinstance(text, str) and text.strip() and not entry.get("error") else None)
        return texts

    def close(self) -> None:
        if self._loop is not None:
            if self._engine is not None:
                self._loop.run_until_complete(self._engine.aclose())
            self._loop.close()
            self._loop = None


@lru_cache(maxsize=1)
def _refine_template():
    return bundled("refine")


def _template(spec: str):
    from rubricate.errors import UsageError
    from rubricate.prompts import load

    try:
        return bundled(spec)
    except UsageError:
        return load(spec, "critique_grpo")


def refinement_messages(rollout: Rollout, critique: str) -> list[dict[str, str]]:
    """Critique-GRPO's refinement prompt (system and user turns) for the policy's chat template."""
    system, user = render_chat(_refine_template(), {"problem": rollout.question, "response": rollout.response,
                                        "critique": critique})
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]


def pick(rewards: list[float | None]) -> int | None:
    """Which refinement of a group to keep: the first correct one, else the highest reward."""
    return choose([{"correct": r == 1.0 if r is not None else None, "reward": r} for r in rewards])
