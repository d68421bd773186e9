"""`rubricate train critique-grpo`: Critique-GRPO (Zhang et al., arXiv 2506.03106) as a subclass of TRL's
GRPOTrainer, following the paper's released code (zhangxy-2019/critique-GRPO @ e8f03a2, a verl fork):

- Rollouts (critique_vllm_rollout_spmd.py, CRITIQUEvLLMRollout.generate_sequences): GRPOTrainer samples n
  rollouts per prompt and verifies them. A failed rollout gets a critique (ground-truth `simple_gt` by
  default, chain-of-thought from `--critic-model`), the policy writes a refinement from it, the refinement
  is verified, and the first correct refinement of the group (else the best) takes the group's first
  slot (`prefix_ratios` = [1, 0, ..., 0]): n-1 on-policy rollouts and one refinement, answering the
  original prompt. `--refinements K` refines up to K failed rollouts per group (the released code refines
  every rollout); a group with no failed rollout keeps its n rollouts.
- Advantages (critique_ray_trainer.py, compute_advantage with `grpo_use_std=False` in its run script
  run_open_r1_math4k-qwen3-8b-base-critique_simple_gt_online.sh): R - mean(R) over the group, refinement
  included, no division by the standard deviation (GRPOConfig.scale_rewards="none").
- Loss (critique_core_algos.py, compute_token_on_off_policy_loss with off_policy_reshape="p_div_p_0.1"
  and no off-policy clip): a refinement token costs -A * f(p), f(p) = p / (p + 0.1) with p the policy's
  current probability of the token, gradient through p, no ratio and no clipping; on-policy tokens keep
  GRPOTrainer's clipped surrogate (with one update per generation, as here by default, the ratio is 1 and
  the clip never binds, which equals the script's `loss_remove_clip=True`). Tokens are summed and divided
  by a constant (`loss_remove_token_mean=True`; TRL's `dr_grpo`). Entropy bonus 0.001 (its
  `ENTROPY_COEFFIENT`), no KL term (`use_kl_loss=False`, beta 0).

Tested with TRL 1.13.0: it overrides GRPOTrainer's `_generate_and_score_completions`, `_calculate_rewards`
and `_compute_loss`, and calls its `_tokenize_prompts`, `_generate_single_turn` and
`_get_per_token_logps_and_entropies`. Imported only by `rubricate train critique-grpo` (torch, TRL).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any

import torch
from trl.trainer.utils import pad

from rubricate.train import refinement as ref
from rubricate.train import runtime
from rubricate.train.data import check_columns, load_splits
from rubricate.train.grpo import RewardKeepingGRPOTrainer, grpo_config
from rubricate.train.settings import Settings

SUPPORTED_LOSSES = ("dr_grpo", "dapo", "bnpo", "grpo")


def shaping_weight(p: torch.Tensor, gamma: float = 0.1) -> torch.Tensor:
    """Critique-GRPO's f(p) = p / (p + gamma): near 1 for tokens the policy already finds likely, small
    (and steep) for surprising ones, so unfamiliar refinement tokens get the larger gradient."""
    return p / (p + gamma)


def critique_token_loss(logps: torch.Tensor, old_logps: torch.Tensor, advantages: torch.Tensor,
                        refined: torch.Tensor, *, epsilon_low: float = 0.2, epsilon_high: float = 0.2,
                        shaping: float = 0.1) -> torch.Tensor:
    """Per-token loss (B, T): GRPO's clipped surrogate on rollout tokens, -A * f(p) on refinement tokens.
    `advantages` and `refined` are (B, 1) (or broadcastable); `refined` is true on refinement rows."""
    ratio = torch.exp(logps - old_logps)
    on_policy = -torch.min(ratio * advantages, torch.clamp(ratio, 1 - epsilon_low, 1 + epsilon_high) * advantages)
    off_policy = -advantages * shaping_weight(torch.exp(logps), shaping)
    return torch.where(refined.bool(), off_policy, on_policy)


class CritiqueGRPOTrainer(RewardKeepingGRPOTrainer):
    """GRPOTrainer with Critique-GRPO's refinements and shaped refinement loss."""

    def __init__(self, *args: Any, critic: Any = None, shaping: float = 0.1, refinements: int = 1, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.critic = critic or ref.GroundTruthCritic()
        self.shaping = shaping
        self.refinements = max(1, refinements)
        problems = []
        if self.beta != 0.0:
            problems.append("beta must be 0 (Critique-GRPO has no KL term)")
        if self.loss_type not in SUPPORTED_LOSSES:
            problems.append(f"loss_type must be one of {', '.join(SUPPORTED_LOSSES)}")
        if self.scale_rewards not in ("none", "group"):
            problems.append("scale_rewards must be 'none' (Critique-GRPO) or 'group'")
        if len(self.reward_funcs) != 1:
            problems.append("exactly one reward function: the verifier that decides which rollouts failed")
        for flag, bad in (("importance_sampling_level='sequence'", self.importance_sampling_level != "token"),
                          ("use_liger_kernel", self.use_liger_kernel), ("tools", bool(self.tools)),
                          ("top_entropy_quantile < 1", self.top_entropy_quantile < 1.0),
                          ("use_adaptive_entropy", self.use_adaptive_entropy),
                          ("off_policy_mask_threshold", self.off_policy_mask_threshold is not None),
                          ("mask_truncated_completions", self.mask_truncated_completions),
                          ("vllm_importance_sampling_correction",
                           self.use_vllm and self.vllm_importance_sampling_correction)):
            if bad:
                problems.append(f"{flag} is not supported")
        if problems:
            raise ValueError("CritiqueGRPOTrainer: " + "; ".join(problems))

    # -- rollouts, critiques, refinements ---------------------------------------------------------

    def _generate_and_score_completions(self, inputs):
        out = super()._generate_and_score_completions(inputs)
        if not self.model.training:
            return out  # evaluation scores the policy's own rollouts
        return self.refine(inputs, out)

    def refine(self, inputs: list[dict], out: dict[str, Any]) -> dict[str, Any]:
        """Replace the first rollout of each group that has a failed one by the best refinement."""
        n, size = self.num_generations, len(inputs)
        device = out["completion_ids"].device
        if size % n:
            raise ValueError(f"each process must hold whole groups: {size} rollouts, {n} per group")
        for g in range(0, size, n):
            if any(inputs[i]["prompt"] != inputs[g]["prompt"] for i in range(g, g + n)):
                raise ValueError("a group's rollouts do not share one prompt: check batch size and num_generations")
        rewards = self.batch_rewards()[self.local_slice(size)].clone().to(device)
        ids = [row[mask.bool()].tolist() for row, mask in zip(out["completion_ids"], out["completion_mask"])]
        texts = self.processing_class.batch_decode(ids, skip_special_tokens=True)

        jobs: list[tuple[int, ref.Rollout]] = []  # (group start, the failed rollout to refine)
        for g in range(0, size, n):
            failed = [i for i in range(g, g + n) if rewards[i].item() == 0.0]  # verified wrong; NaN: undecided
            for i in failed[: self.refinements]:
                truth = ref.ground_truth(inputs[i])
                jobs.append((g, ref.Rollout(ref.question(inputs[i]), texts[i], truth, ref.target(inputs[i]))))
        critiques = self.critic([r for _, r in jobs])
        fallback = sum(c is None for c in critiques)
        critiques = [c if c is not None else ref.GroundTruthCritic()([r])[0] for c, (_, r) in zip(critiques, jobs)]
        prompts = [ref.refinement_messages(r, c) for c, (_, r) in zip(critiques, jobs)]
        refined_ids = self._generate_refinements(prompts)
        refined_texts = self.processing_class.batch_decode(refined_ids, skip_special_tokens=True)
        refined_rewards = ref.verified_answer_reward(
            refined_texts, solution=[r.ground_truth for _, r in jobs])

        refined = torch.zeros(size, device=device)
        correct = 0
        for g in range(0, size, n):
            mine = [j for j, (start, _) in enumerate(jobs) if start == g]
            best = ref.pick([refined_rewards[j] for j in mine]) if mine else None
            if best is None:
                continue
            j = mine[best]
            ids[g] = self._ended(refined_ids[j])
            reward = refined_rewards[j]
            rewards[g] = float("nan") if reward is None else reward
            refined[g] = 1.0
            correct += reward == 1.0

        self._replace(out, ids, rewards, refined, n)
        groups = size // n
        metrics = self._metrics["train"]
        metrics["critique/refined_groups"].append(refined.sum().item() / groups)
        metrics["critique/refinement_accuracy"].append(correct / max(1.0, refined.sum().item()))
        metrics["critique/critic_fallbacks"].append(float(fallback))
        metrics["critique/reward_with_refinements"].append(torch.nanmean(rewards).item())
        return out

    def _ended(self, completion: list[int]) -> list[int]:
        # As the released code appends EOS to every refinement, a truncated one ends too.
        eos = self._tokenizer.eos_token_id
        return completion if (completion and completion[-1] == eos) else completion + [eos]

    @contextmanager
    def _one_per_prompt(self):
        # GRPOTrainer's generation draws num_generations per prompt in vLLM server mode; a refinement is one.
        saved = self.num_generations
        self.num_generations = 1
        try:
            yield
        finally:
            self.num_generations = saved

    def _generate_refinements(self, prompts: list[list[dict[str, str]]]) -> list[list[int]]:
        """One refinement per prompt, by the policy, through GRPOTrainer's own generation (transformers,
        or vLLM). Every process generates the same number of prompts (padded with a copy of its first,
        or of a stub), since generation under DeepSpeed ZeRO-3 and vLLM server mode is collective."""
        count = len(prompts)
        most = int(self.accelerator.gather(torch.tensor([count], device=self.accelerator.device)).max().item())
        if most == 0:
            return []
        stub = prompts[0] if prompts else [{"role": "user", "content": "."}]
        padded = prompts + [stub] * (most - count)
        prompt_ids, _, _ = self._tokenize_prompts(padded)
        with self._one_per_prompt():
            completion_ids, _ = self._generate_single_turn(prompt_ids, None, {})
        return [list(c) for c in completion_ids[:count]]

    def _replace(self, out: dict[str, Any], ids: list[list[int]], rewards: torch.Tensor, refined: torch.Tensor,
                 n: int) -> None:
        """New completions, masks and advantages (R - mean R per group) in GRPOTrainer's output."""
        device = out["completion_ids"].device
        tensors = [torch.tensor(c, dtype=torch.long) for c in ids]
        out["completion_ids"] = pad(tensors, padding_value=self._tokenizer.pad_token_id, padding_side="right",
                                    pad_to_multiple_of=self.pad_to_multiple_of).to(device)
        out["completion_mask"] = pad([torch.ones_like(t) for t in tensors], padding_value=0, padding_side="right",
                                     pad_to_multiple_of=self.pad_to_multiple_of).to(device)
        grouped = rewards.view(-1, n)
        advantages = grouped - torch.nanmean(grouped, dim=1, keepdim=True)
        if self.scale_rewards == "group":
            mean = torch.nanmean(grouped, dim=1, keepdim=True)
            count = (~torch.isnan(grouped)).sum(dim=1, keepdim=True).clamp(min=2)
            std = torch.sqrt(torch.nansum((grouped - mean) ** 2, dim=1, keepdim=True) / (count - 1))
            advantages = advantages / (std + 1e-4)
        out["advantages"] = torch.nan_to_num(advantages.reshape(-1), nan=0.0)
        out["refinement_mask"] = refined
        out["num_items_in_batch"] = self.accelerator.gather(out["completion_mask"].sum()).sum()
        for key in ("sampling_per_token_logps", "importance_sampling_ratio"):
            out.pop(key, None)  # vLLM's sampling log-probs no longer match the completions
        if "old_per_token_logps" in out:
            with torch.no_grad():
                input_ids = torch.cat([out["prompt_ids"], out["completion_ids"]], dim=1)
                mask = torch.cat([out["prompt_mask"], out["completion_mask"]], dim=1)
                out["old_per_token_logps"], _, _ = self._get_per_token_logps_and_entropies(
                    self.model, input_ids, mask, out["completion_ids"].size(1), self.args.per_device_train_batch_size)

    # -- loss --------------------------------------------------------------------------------------

    def _compute_loss(self, model, inputs):
        if "refinement_mask" not in inputs:
            return super()._compute_loss(model, inputs)
        completion_ids, mask = inputs["completion_ids"], inputs["completion_mask"]
        input_ids = torch.cat([inputs["prompt_ids"], completion_ids], dim=1)
        attention_mask = torch.cat([inputs["prompt_mask"], mask], dim=1)
        logps, entropies, _ = self._get_per_token_logps_and_entropies(
            model, input_ids, attention_mask, completion_ids.size(1), compute_entropy=True)
        old = inputs.get("old_per_token_logps")
        old = logps.detach() if old is None else old
        advantages = inputs["advantages"].unsqueeze(1)
        refined = inputs["refinement_mask"].unsqueeze(1).bool()
        per_token = critique_token_loss(logps, old, advantages, refined, epsilon_low=self.epsilon_low,
                                        epsilon_high=self.epsilon_high, shaping=self.shaping)
        mode = "train" if self.model.training else "eval"
        # set by the training loop; outside it (a single step called directly) the configured value
        steps = getattr(self, "current_gradient_accumulation_steps", self.args.gradient_accumulation_steps)
        accumulation = steps if mode == "train" else 1.0
        mask = mask.to(per_token.dtype)
        if self.loss_type == "dr_grpo":
            loss = (per_token * mask).sum() / (per_token.size(0) * self.max_completion_length) / accumulation
        elif self.loss_type == "bnpo":
            loss = (per_token * mask).sum() / mask.sum().clamp(min=1.0) / accumulation
        elif self.loss_type == "grpo":
            loss = ((per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean() / accumulation
        else:  # dapo: tokens of the whole accumulated generation batch
            normalizer = inputs["num_items_in_batch"].clamp(min=1.0) / self.accelerator.num_processes
            if mode == "train":
                normalizer = normalizer * steps / self.args.steps_per_generation
            loss = (per_token * mask).sum() / normalizer
        if self.entropy_coef:
            loss = loss - self.entropy_coef * (entropies * mask).sum() / mask.sum().clamp(min=1.0) / accumulation
        self._log_loss_metrics(mode, entropies, logps, mask, refined)
        return loss

    def _log_loss_metrics(self, mode: str, entropies, logps, mask, refined) -> None:
        self._metrics[mode]["entropy"].append(self._masked_mean(entropies.detach(), mask))
        weights = shaping_weight(torch.exp(logps.detach()), self.shaping)
        self._metrics[mode]["critique/shaping_weight"].append(self._masked_mean(weights, mask * refined.to(mask.dtype)))

    def _masked_mean(self, values: torch.Tensor, mask: torch.Tensor) -> float:
        totals = self.accelerator.reduce(torch.stack([(values * mask).sum(), mask.sum()]), reduction="sum")
        return (totals[0] / totals[1].clamp(min=1.0)).item()


def make_critic(s: Settings):
    if s.critique == "cot":
        return ref.ModelCritic(s.critic_model, api_base=s.critic_api_base, template=s.critic_template,
                               max_tokens=s.critic_max_tokens, concurrency=s.critic_concurrency)
    return ref.GroundTruthCritic()


def run(s: Settings) -> dict[str, Any]:
    from transformers import AutoModelForCausalLM

    train, held = load_splits(s.data, s.eval_data)
    check_columns("critique-grpo", train, s.data)
    evaluate = held is not None and bool(s.eval_steps)
    if evaluate:
        check_columns("critique-grpo", held, s.eval_data or s.data)
    critic = make_critic(s)
    args = grpo_config(s, has_eval=evaluate, beta=0.0, scale_rewards="none", loss_type="dr_grpo",
                       entropy_coef=s.entropy_coef, vllm_importance_sampling_correction=False)
    tok = runtime.tokenizer(s.model)
    model = runtime.load_model(AutoModelForCausalLM, s.model, s)
    trainer = CritiqueGRPOTrainer(model=model, reward_funcs=[ref.verified_answer_reward], args=args,
                                  train_dataset=train, eval_dataset=held if evaluate else None, processing_class=tok,
                                  peft_config=runtime.lora_config(s, "CAUSAL_LM"), critic=critic, shaping=s.shaping,
                                  refinements=s.refinements)
    try:
        trainer.train(resume_from_checkpoint=runtime.checkpoint(s))
        metrics = runtime.evaluate(trainer) if evaluate else None
    finally:
        critic.close()
    return runtime.finish(trainer, s, metrics)
