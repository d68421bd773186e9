"""`rubricate train srl`: Supervised Reinforcement Learning (Deng et al., arXiv 2510.25992) on TRL's
GRPOTrainer, with an `srl` export: one row per expert step, the model writes a monologue in
<think>...</think> and then the next step, and `rubricate.rewards.srl_reward` scores that step
against the row's `expert_action` (difflib sequence similarity; -1 when the output is malformed).

Dynamic sampling, as SRL does it after DAPO: a prompt whose rollouts' rewards barely vary (standard
deviation below `--min-reward-std`) teaches nothing and, with advantages divided by the group's
standard deviation, would turn noise into large updates; it is dropped. GRPOTrainer's batch has a
fixed shape, so a dropped group is masked out of the loss (its tokens and advantages zeroed) instead
of being replaced by newly sampled prompts; `srl/dropped_groups` logs the share dropped per batch.

Imported only by `rubricate train srl`: it imports torch and TRL.
"""

from __future__ import annotations

from typing import Any

from rubricate.rewards import srl_reward
from rubricate.train import runtime
from rubricate.train.data import check_columns, load_splits
from rubricate.train.grpo import RewardKeepingGRPOTrainer, group_std, grpo_config
from rubricate.train.settings import Settings


class SRLTrainer(RewardKeepingGRPOTrainer):
    """GRPOTrainer with SRL's dynamic sampling."""

    def __init__(self, *args: Any, min_reward_std: float = 0.01, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.min_reward_std = min_reward_std

    def _generate_and_score_completions(self, inputs):
        out = super()._generate_and_score_completions(inputs)
        if not self.model.training or self.min_reward_std <= 0:
            return out
        n = self.num_generations
        keep_group = group_std(self.batch_rewards(), n) >= self.min_reward_std
        keep = keep_group.repeat_interleave(n)[self.local_slice(len(inputs))].to(out["advantages"].device)
        out["completion_mask"] = out["completion_mask"] * keep.unsqueeze(1).to(out["completion_mask"].dtype)
        out["advantages"] = out["advantages"] * keep.to(out["advantages"].dtype)
        out["num_items_in_batch"] = self.accelerator.gather(out["completion_mask"].sum()).sum()
        self._metrics["train"]["srl/dropped_groups"].append(1.0 - keep_group.float().mean().item())
        return out


def run(s: Settings) -> dict[str, Any]:
    from transformers import AutoModelForCausalLM

    train, held = load_splits(s.data, s.eval_data)
    check_columns("srl", train, s.data)
    evaluate = held is not None and bool(s.eval_steps)  # evaluation generates: only when asked for
    if evaluate:
        check_columns("srl", held, s.eval_data or s.data)
    # SRL is GRPO: advantages normalised within the group; no KL term.
    args = grpo_config(s, has_eval=evaluate, beta=0.0, scale_rewards="group")
    tok = runtime.tokenizer(s.model)
    model = runtime.load_model(AutoModelForCausalLM, s.model, s)
    trainer = SRLTrainer(model=model, reward_funcs=[srl_reward], args=args, train_dataset=train,
                         eval_dataset=held if evaluate else None, processing_class=tok,
                         peft_config=runtime.lora_config(s, "CAUSAL_LM"), min_reward_std=s.min_reward_std)
    trainer.train(resume_from_checkpoint=runtime.checkpoint(s))
    metrics = runtime.evaluate(trainer) if evaluate else None
    return runtime.finish(trainer, s, metrics)
