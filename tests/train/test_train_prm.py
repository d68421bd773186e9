"""`rubricate train prm`: TRL's PRMTrainer on a trl-stepwise export of real ProcessBench traces, with step
accuracy and ProcessBench F1 on the held-out split, checkpoints and --resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rubricate.train.prm import first_bad, step_metrics

IGNORE = -100


def labelled(labels: list[int], width: int = 12) -> list[int]:
    """A row as PRMTrainer lays it out: a label on each step's last token, -100 elsewhere."""
    row = [IGNORE] * width
    for i, label in enumerate(labels):
        row[2 * i + 1] = label
    return row


def test_step_metrics_are_step_accuracy_and_processbench_f1():
    gold = [[1, 1, 0], [1, 1], [1, 0], [1, 1, 1]]
    pred = [[1, 1, 0],  # the first error found: right on an erroneous sample
            [1, 1],  # no error found: right on a correct sample
            [0, 0],  # an error called too early: wrong
            [1, 0, 1]]  # a false alarm on a correct sample: wrong
    # predictions outside the labelled positions must not count
    predictions = [[0] * len(labelled(g)) for g in gold]
    for row, p in zip(predictions, pred):
        for i, v in enumerate(p):
            row[2 * i + 1] = v
    scores = step_metrics(predictions, [labelled(g) for g in gold])
    assert scores["step_accuracy"] == pytest.approx(8 / 10)
    assert scores["processbench_error_accuracy"] == 50.0 and scores["processbench_correct_accuracy"] == 50.0
    assert scores["processbench_f1"] == pytest.approx(50.0)
    assert first_bad([1, 1]) == -1 and first_bad([1, 0, 0]) == 1
    # no erroneous sample: ProcessBench's accuracy on them, hence F1, is undefined
    only_correct = step_metrics([labelled([1])], [labelled([1])])
    assert only_correct["processbench_correct_accuracy"] == 100.0 and only_correct["processbench_f1"] != \
        only_correct["processbench_f1"]


def test_prm_loss_falls_on_a_fixed_batch_and_scores_the_held_out_split(rubricate, export, tiny_model, tmp_path,
                                                                       log_history):
    pytest.importorskip("trl")
    data = export("trl-stepwise", 12, 4)  # 8 train rows (one batch), 4 held out
    out = tmp_path / "prm"
    common = ["--model", tiny_model, "-o", str(out), "--batch-size", "8", "--lr", "3e-3", "--max-length", "384",
              "--logging-steps", "1", "--save-steps", "6", "--eval-steps", "4", "--report-to", "none",
              "--no-gradient-checkpointing"]
    result = rubricate("train", "prm", data, "--max-steps", "6", *common)
    assert result.code == 0, result.stderr
    history = log_history(out)
    losses = [h["loss"] for h in history if "loss" in h]
    assert len(losses) == 6 and losses[-1] < losses[0]
    evals = [h for h in history if "eval_processbench_f1" in h]
    assert [h["step"] for h in evals] == [4, 6]  # every --eval-steps and at the end
    final = json.loads((out / "eval_results.json").read_text())
    assert 0.0 <= final["eval_step_accuracy"] <= 1.0
    assert {f"eval_processbench_{k}" for k in ("f1", "error_accuracy", "correct_accuracy")} <= set(final)
    assert (out / "checkpoint-6").is_dir() and (out / "model.safetensors").is_file()
    summary = json.loads((out / "rubricate_train.json").read_text())
    assert summary["steps"] == 6 and summary["eval"]["eval_step_accuracy"] == final["eval_step_accuracy"]

    # --resume continues from the last checkpoint; the settings file written by the run repeats it
    result = rubricate("train", "prm", "--config", str(out / "rubricate_train.yaml"), "--resume", "--max-steps", "8")
    assert result.code == 0, result.stderr
    history = log_history(out)
    assert [h["step"] for h in history if "loss" in h] == list(range(1, 9))
    assert json.loads((out / "rubricate_train.json").read_text())["steps"] == 8


def test_resume_without_a_checkpoint_is_a_usage_error(rubricate, export, tiny_model, tmp_path):
    pytest.importorskip("trl")
    result = rubricate("train", "prm", export("trl-stepwise", 12, 4), "--model", tiny_model, "-o",
                       str(tmp_path / "empty"), "--resume", "--max-steps", "1", "--report-to", "none")
    assert result.code == 2 and "no checkpoint" in result.stderr
    assert not Path(tmp_path / "empty" / "model.safetensors").exists()


def test_lora_trains_an_adapter_that_keeps_the_new_score_head(rubricate, export, tiny_model, tmp_path):
    pytest.importorskip("peft")
    from safetensors import safe_open

    out = tmp_path / "lora"
    result = rubricate("train", "prm", export("trl-stepwise", 12, 4), "--model", tiny_model, "-o", str(out),
                       "--lora", "--lora-r", "4", "--max-steps", "2", "--batch-size", "4", "--max-length", "256",
                       "--report-to", "none", "--no-gradient-checkpointing")
    assert result.code == 0, result.stderr
    config = json.loads((out / "adapter_config.json").read_text())
    assert (config["r"], config["task_type"]) == (4, "TOKEN_CLS")
    with safe_open(str(out / "adapter_model.safetensors"), "pt") as fh:
        keys = list(fh.keys())
    assert any("lora_A" in k for k in keys) and any(k.endswith("score.weight") for k in keys)
    assert not (out / "model.safetensors").exists()  # the adapter, not a full copy of the model
