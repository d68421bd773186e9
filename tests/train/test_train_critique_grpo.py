"""`rubricate train critique-grpo`: the Critique-GRPO step (one rollout per group replaced by a verified
refinement the policy wrote from a critique, advantages R - mean(R), the shaped refinement loss) on a
constructed batch of real exported rows, the CoT critic through the model seam, and a run end to end."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

from rubricate.generators.critique import GROUND_TRUTH  # noqa: E402
from rubricate.train import refinement as ref  # noqa: E402
from rubricate.train.critique_grpo import critique_token_loss, shaping_weight  # noqa: E402

N, LENGTH = 4, 8


def test_refinement_tokens_get_the_shaping_weight_without_ratio_or_clipping():
    logps = torch.log(torch.tensor([[0.9, 0.5, 0.01], [0.9, 0.5, 0.01]])).requires_grad_()
    old = torch.log(torch.tensor([[0.3, 0.5, 0.5], [0.3, 0.5, 0.5]]))  # ratios 3, 1, 0.02: two outside the clip
    advantages = torch.tensor([[1.0], [1.0]])
    refined = torch.tensor([[True], [False]])
    loss = critique_token_loss(logps, old, advantages, refined, epsilon_low=0.2, epsilon_high=0.2, shaping=0.1)
    p = torch.tensor([0.9, 0.5, 0.01])
    assert torch.allclose(loss[0], -p / (p + 0.1))  # -A f(p), whatever the ratio
    assert torch.allclose(loss[1], -torch.tensor([1.2, 1.0, 0.02]))  # GRPO's clipped surrogate (A > 0)
    loss.sum().backward()
    # d/dlogp of -f(p) = -0.1 p / (p + 0.1)^2: largest for unlikely tokens, nothing clipped away
    assert torch.allclose(logps.grad[0], -0.1 * p / (p + 0.1) ** 2)
    assert logps.grad[1, 0] == 0.0 and logps.grad[1, 2] != 0.0  # on-policy: the clipped token gets no gradient
    assert shaping_weight(torch.tensor(0.1)).item() == pytest.approx(0.5)


def test_ground_truth_critique_and_refinement_prompt_are_critique_grpos():
    row = {"prompt": [{"role": "system", "content": "You are a helpful assistant."},
                      {"role": "user", "content": "Q?\nPlease reason step by step."}],
           "reward_model": {"ground_truth": "24", "question": "Q?"}, "target": [{"role": "assistant", "content": "S"}]}
    rollout = ref.Rollout(ref.question(row), "I think 30.", ref.ground_truth(row), ref.target(row))
    assert (rollout.question, rollout.ground_truth, rollout.target) == ("Q?", "24", "S")
    (critique,) = ref.GroundTruthCritic()([rollout])
    assert critique == "The generated solution is incorrect, the ground truth is 24." == GROUND_TRUTH[False] + "24."
    system, user = ref.refinement_messages(rollout, critique)
    assert system == {"role": "system", "content": "You are a helpful assistant."}
    assert "**Question**: Q?" in user["content"] and "**Previous Solution**: I think 30." in user["content"]
    assert f"**Critique**: {critique}" in user["content"]
    assert ref.question({"prompt": [{"role": "user", "content": "only"}], "solution": "1"}) == "only"
    answers = ["so \\boxed{24}", "\\boxed{7}", "no answer"]
    assert ref.verified_answer_reward(answers, reward_model=[row["reward_model"]] * 3) == [1.0, 0.0, 0.0]
    assert ref.pick([0.0, 1.0, 1.0]) == 1 and ref.pick([None, 0.0]) == 1 and ref.pick([]) is None


@pytest.fixture
def trainer(export, tiny_model, tmp_path):
    from datasets import load_from_disk
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig

    from rubricate.train.critique_grpo import CritiqueGRPOTrainer

    rows = load_from_disk(export("critique-grpo", 6))["train"]
    args = GRPOConfig(output_dir=str(tmp_path), num_generations=N, per_device_train_batch_size=2 * N,
                      max_completion_length=LENGTH, report_to="none", bf16=False, activation_checkpointing=False,
                      beta=0.0, scale_rewards="none", loss_type="dr_grpo", entropy_coef=0.001)
    trainer = CritiqueGRPOTrainer(model=AutoModelForCausalLM.from_pretrained(tiny_model),
                                  reward_funcs=[ref.verified_answer_reward], args=args, train_dataset=rows,
                                  processing_class=AutoTokenizer.from_pretrained(tiny_model))
    trainer.model.train()
    return trainer, rows


def test_one_rollout_per_group_becomes_the_verified_refinement(trainer):
    trainer, rows = trainer
    tok = trainer.processing_class
    first, second = rows[0], rows[1]
    truths = [first["reward_model"]["ground_truth"], second["reward_model"]["ground_truth"]]
    seen: list = []
    answers = [f"The answer is \\boxed{{{truths[0]}}}.", "The answer is \\boxed{-1}."]  # right, then wrong
    scripted = [tok(a, add_special_tokens=False)["input_ids"] + [tok.eos_token_id] for a in answers]

    def refinements(prompts):  # the policy's refinement generation, scripted; everything else is real
        seen.extend(prompts)
        return scripted[: len(prompts)]

    trainer._generate_refinements = refinements
    out = trainer._generate_and_score_completions([first] * N + [second] * N)

    # a random policy fails every rollout: each group refines its first failed one, from simple_gt's critique
    assert len(seen) == 2
    for prompt, row, truth in zip(seen, (first, second), truths):
        user = prompt[-1]["content"]
        assert f"**Critique**: The generated solution is incorrect, the ground truth is {truth}." in user
        assert f"**Question**: {row['reward_model']['question']}" in user
    # the group's first slot holds the refinement, answering the original prompt
    assert out["refinement_mask"].tolist() == [1.0, 0, 0, 0, 1.0, 0, 0, 0]
    mask = out["completion_mask"].bool()
    assert out["completion_ids"][0][mask[0]].tolist() == scripted[0]
    assert out["completion_ids"][N][mask[N]].tolist() == scripted[1]
    assert torch.equal(out["prompt_ids"][0], out["prompt_ids"][1])
    # advantages R - mean(R), not divided by the standard deviation: 1 vs 0, 0, 0; and all 0 in the second group
    assert torch.allclose(out["advantages"].cpu(), torch.tensor([0.75, -0.25, -0.25, -0.25, 0, 0, 0, 0]))
    assert out["num_items_in_batch"] == mask.sum()
    metrics = trainer._metrics["train"]
    assert metrics["critique/refined_groups"] == [1.0] and metrics["critique/refinement_accuracy"] == [0.5]

    # the loss: -A f(p) on the refinement's tokens, -A on the rollouts' (ratio 1), dr_grpo's constant
    # normaliser, minus 0.001 x the mean entropy
    loss = trainer._compute_loss(trainer.model, out)
    input_ids = torch.cat([out["prompt_ids"], out["completion_ids"]], dim=1)
    attention = torch.cat([out["prompt_mask"], out["completion_mask"]], dim=1)
    with torch.no_grad():
        logps, entropies, _ = trainer._get_per_token_logps_and_entropies(
            trainer.model, input_ids, attention, out["completion_ids"].size(1), compute_entropy=True)
    a = out["advantages"].unsqueeze(1)
    p = torch.exp(logps)
    per_token = torch.where(out["refinement_mask"].bool().unsqueeze(1), -a * p / (p + 0.1), -a.expand_as(p))
    m = out["completion_mask"].float()
    expected = (per_token * m).sum() / (2 * N * LENGTH) - 0.001 * (entropies * m).sum() / m.sum()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5, abs=1e-7)
    # and it is not plain GRPO's loss: the shaping weight moved it
    plain = (-a.expand_as(p) * m).sum() / (2 * N * LENGTH) - 0.001 * (entropies * m).sum() / m.sum()
    assert abs(loss.item() - plain.item()) > 1e-4


def test_a_group_with_no_failed_rollout_keeps_its_rollouts(trainer, monkeypatch):
    trainer, rows = trainer
    called = []
    monkeypatch.setattr(trainer, "_generate_refinements", lambda prompts: called.append(prompts) or [])
    monkeypatch.setattr(ref, "verified_answer_reward", lambda completions, **kw: [1.0] * len(completions))
    trainer.reward_funcs[0] = ref.verified_answer_reward
    out = trainer._generate_and_score_completions([rows[0]] * N + [rows[1]] * N)
    assert called == [[]] and out["refinement_mask"].sum() == 0
    assert torch.equal(out["advantages"].cpu(), torch.zeros(2 * N))


def test_the_cot_critic_asks_a_model_through_the_seam(llm_server):
    llm_server.script(None, "The student added 18 and 12 instead of subtracting.\nConclusion: wrong [END]")
    critic = ref.ModelCritic("openai/critic", api_base=llm_server.openai_base)
    rollouts = [ref.Rollout("How many?", f"It is {k}.", "24", "Expert: 24.") for k in (30, 31)]
    try:
        texts = critic(rollouts)
        assert texts == ["The student added 18 and 12 instead of subtracting.\nConclusion: wrong [END]"] * 2
        assert llm_server.count() == 2
        request = llm_server.requests[0]
        assert "incorrect solution" in request["system"]  # Critique-GRPO's prompt for a failed response
        assert "Expert: 24." in request["text"] and "It is 30." in request["text"]
        llm_server.script(None, "no verdict at all")
        assert critic([ref.Rollout("Q", "R", "1")]) == [None]  # unreadable: the trainer falls back to simple_gt
    finally:
        critic.close()


def test_critique_grpo_end_to_end_with_a_cot_critic(rubricate, export, tiny_model, tmp_path, llm_server,
                                                    log_history):
    llm_server.script(None, "Wrong arithmetic in the last step.\nConclusion: wrong [END]")
    out = tmp_path / "cgrpo"
    result = rubricate("train", "critique-grpo", export("critique-grpo", 6), "--model", tiny_model, "-o", str(out),
                       "--batch-size", "8", "-n", "4", "--max-completion-length", "8", "--max-steps", "2",
                       "--logging-steps", "1", "--critique", "cot", "--critic-model", "openai/critic",
                       "--critic-api-base", llm_server.openai_base, "--report-to", "none",
                       "--no-gradient-checkpointing")
    assert result.code == 0, result.stderr
    steps = [h for h in log_history(out) if "critique/refined_groups" in h]
    assert len(steps) == 2 and llm_server.count() > 0
    for h in steps:
        assert h["critique/critic_fallbacks"] == 0.0 and 0.0 < h["critique/refined_groups"] <= 1.0
        assert 0.0 < h["critique/shaping_weight"] < 1.0
        assert "rewards/verified_answer_reward/mean" in h
