"""`rubricate train srl`: TRL's GRPOTrainer with the SRL reward on an srl export of real GSM8K solutions,
and SRL's dynamic sampling checked on a constructed batch."""

from __future__ import annotations

import pytest


def test_srl_rewards_are_computed_and_logged(rubricate, export, tiny_model, tmp_path, log_history):
    pytest.importorskip("trl")
    out = tmp_path / "srl"
    result = rubricate("train", "srl", export("srl", 6), "--model", tiny_model, "-o", str(out), "--batch-size", "8",
                       "-n", "4", "--max-completion-length", "12", "--max-steps", "2", "--logging-steps", "1",
                       "--report-to", "none", "--no-gradient-checkpointing")
    assert result.code == 0, result.stderr
    steps = [h for h in log_history(out) if "rewards/srl_reward/mean" in h]
    assert len(steps) == 2
    for h in steps:
        # a random policy rarely closes a <think> block once: mostly SRL's -1 for a malformed output
        assert -1.0 <= h["rewards/srl_reward/mean"] <= 1.0 and h["rewards/srl_reward/std"] >= 0.0
        assert 0.0 <= h["srl/dropped_groups"] <= 1.0
        # a group whose rewards do not vary is dropped by dynamic sampling
        assert h["srl/dropped_groups"] >= h["frac_reward_zero_std"]


def test_dynamic_sampling_drops_groups_whose_rewards_barely_vary(export, tiny_model, tmp_path):
    pytest.importorskip("trl")
    import torch
    from datasets import load_from_disk
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig

    from rubricate.rewards import srl_reward
    from rubricate.train.grpo import group_std
    from rubricate.train.srl import SRLTrainer

    rows = load_from_disk(export("srl", 6))["train"]
    flat, varied = rows[0], rows[1]
    calls = []

    def scripted(completions, expert_action, **kw):
        # the real SRL reward is computed (and must accept the rows' columns); the group's scores are scripted
        calls.append(srl_reward(completions, expert_action))
        assert expert_action == [flat["expert_action"]] * 4 + [varied["expert_action"]] * 4
        return [0.5, 0.5 + 1e-4, 0.5, 0.5] + [0.0, 0.2, 0.4, 0.9]

    args = GRPOConfig(output_dir=str(tmp_path), num_generations=4, per_device_train_batch_size=8,
                      max_completion_length=6, report_to="none", bf16=False, activation_checkpointing=False)
    trainer = SRLTrainer(model=AutoModelForCausalLM.from_pretrained(tiny_model), reward_funcs=[scripted], args=args,
                         train_dataset=rows, processing_class=AutoTokenizer.from_pretrained(tiny_model),
                         min_reward_std=0.01)
    trainer.model.train()
    out = trainer._generate_and_score_completions([flat] * 4 + [varied] * 4)
    assert len(calls) == 1 and len(calls[0]) == 8 and all(-1.0 <= r <= 1.0 for r in calls[0])
    mask, advantages = out["completion_mask"].cpu(), out["advantages"].cpu()
    assert mask[:4].sum() == 0 and bool((mask[4:].sum(dim=1) > 0).all())  # the flat group is out of the loss
    assert torch.equal(advantages[:4], torch.zeros(4)) and advantages[4:].abs().sum() > 0
    assert out["num_items_in_batch"].item() == mask.sum().item()
    assert trainer._metrics["train"]["srl/dropped_groups"] == [0.5]
    assert group_std(torch.tensor([1.0, 1.0, 0.0, 2.0]), 2).tolist() == [0.0, 1.0]
