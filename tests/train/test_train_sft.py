"""`rubricate train sft`: TRL's SFTTrainer on a trl-sft export (verified refinements) and a thinkprm-sft
export (a judge's verification chains), both written by `rubricate export` from real traces."""

from __future__ import annotations

import pytest


def test_sft_loss_falls_on_a_fixed_batch(rubricate, export, tiny_model, tmp_path, log_history):
    pytest.importorskip("trl")
    out = tmp_path / "sft"
    result = rubricate("train", "sft", export("trl-sft", 10, 2), "--model", tiny_model, "-o", str(out),
                       "--batch-size", "8", "--lr", "3e-3", "--max-steps", "6", "--logging-steps", "1",
                       "--max-length", "512", "--report-to", "none", "--no-gradient-checkpointing")
    assert result.code == 0, result.stderr
    history = log_history(out)
    losses = [h["loss"] for h in history if "loss" in h]
    assert len(losses) == 6 and losses[-1] < losses[0] - 0.1
    assert any("eval_loss" in h for h in history)  # the held-out split, scored at the end


def test_thinkprm_rows_train_the_chain_as_the_completion(export):
    pytest.importorskip("trl")
    from datasets import load_from_disk

    from rubricate.train.sft import as_prompt_completion

    rows = load_from_disk(export("thinkprm-sft", 10, 2))["train"]
    pairs = as_prompt_completion(rows)
    assert pairs.column_names == ["prompt", "completion"] and len(pairs) == len(rows)
    for row, pair in zip(rows, pairs):
        assert pair["prompt"] == row["messages"][:1] and pair["prompt"][0]["role"] == "user"
        assert pair["completion"] == [{"role": "assistant", "content": row["cot"]}]
        assert pair["completion"][0]["content"].startswith("Let's verify step by step:")


def test_a_max_length_no_prompt_fits_is_a_usage_error(rubricate, export, tiny_model, tmp_path):
    pytest.importorskip("trl")
    result = rubricate("train", "sft", export("thinkprm-sft", 10, 2), "--model", tiny_model, "-o",
                       str(tmp_path / "x"), "--max-length", "16", "--max-steps", "1", "--report-to", "none")
    assert result.code == 2 and "--max-length 16" in result.stderr
