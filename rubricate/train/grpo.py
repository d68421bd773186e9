"""What the two GRPO methods share: the GRPOConfig built from the settings, and a GRPOTrainer that keeps
the rewards of its last batch (GRPOTrainer turns them into advantages and forgets them; SRL's dynamic
sampling and Critique-GRPO's refinements need them per completion).

Imported only by `rubricate train srl|critique-grpo`: it imports torch and TRL.
"""

from __future__ import annotations

from typing import Any

import torch
from trl import GRPOConfig, GRPOTrainer

from rubricate.train.settings import Settings, trl_config


def grpo_config(s: Settings, has_eval: bool, **specific: Any) -> GRPOConfig:
    fields: dict[str, Any] = dict(
        num_generations=s.num_generations, max_completion_length=s.max_completion_length,
        temperature=s.temperature, top_p=s.top_p, use_vllm=s.use_vllm,
        # evaluation generates like training: the eval batch must hold whole groups
        per_device_eval_batch_size=s.eval_batch_size or s.batch_size,
        # the reward columns are read from the dataset rows: keep them
        remove_unused_columns=False,
    )
    fields.update(specific)
    return trl_config(s, GRPOConfig, has_eval=has_eval, **fields)


def group_std(rewards: torch.Tensor, n: int) -> torch.Tensor:
    """Standard deviation of each group of n consecutive rewards (NaN rewards ignored), one per group."""
    grouped = rewards.view(-1, n)
    mean = torch.nanmean(grouped, dim=1, keepdim=True)
    count = (~torch.isnan(grouped)).sum(dim=1).clamp(min=1)
    return torch.sqrt(torch.nansum((grouped - mean) ** 2, dim=1) / count)


class RewardKeepingGRPOTrainer(GRPOTrainer):
    """GRPOTrainer that remembers each batch's rewards (all processes', as GRPOTrainer gathers them)."""

    _rewards_per_func: torch.Tensor | None = None

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        self._rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        return self._rewards_per_func

    def batch_rewards(self) -> torch.Tensor:
        """The weighted reward of every completion of the last batch, all processes; NaN when no reward
        function could score it (as GRPOTrainer counts it)."""
        per_func = self._rewards_per_func
        rewards = (per_func * self.reward_weights.to(per_func.device).unsqueeze(0)).nansum(dim=1)
        rewards[torch.isnan(per_func).all(dim=1)] = torch.nan
        return rewards

    def local_slice(self, size: int) -> slice:
        i = self.accelerator.process_index
        return slice(i * size, (i + 1) * size)
