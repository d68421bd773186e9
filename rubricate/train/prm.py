"""`rubricate train prm`: a process reward model, trained by TRL's PRMTrainer (trl.experimental.prm)
on a `trl-stepwise` export: a token classifier (good / bad) that reads each step's label on the
separator after it, as PRMTrainer.tokenize_row lays the labels out.

On the held-out split, every `--eval-steps` and at the end, two scores:
- `step_accuracy`: the share of labelled steps classified right (what TRL's compute_accuracy reports);
- ProcessBench's metric through `rubricate eval processbench`'s code: per held-out row, the gold first
  error is its first bad step (-1 when none) and the prediction the first step the PRM calls bad;
  `processbench_f1` is the harmonic mean of the accuracy on erroneous and on correct rows (percent).
"""

from __future__ import annotations

import os
from typing import Any

from rubricate.train.settings import Settings


def first_bad(labels: list[int]) -> int:
    return next((i for i, v in enumerate(labels) if v == 0), -1)


def step_metrics(predictions, labels) -> dict[str, float]:
    """Step accuracy and ProcessBench scores from per-token predicted classes and labels (-100 where
    no step ends), one row per held-out example."""
    from rubricate.evaluation.processbench import evaluate

    right = total = 0
    records = []
    for pred_row, label_row in zip(predictions, labels):
        gold = [int(v) for v in label_row if v != -100]
        pred = [int(p) for p, v in zip(pred_row, label_row) if v != -100]
        right += sum(p == g for p, g in zip(pred, gold))
        total += len(gold)
        if gold:
            records.append({"meta": {"label": first_bad(gold)},
                            "feedback": {"step_labels": {"first_error_step": first_bad(pred)}}})
    scores = evaluate(records)["overall"]
    out = {"step_accuracy": right / total if total else float("nan")}
    for key in ("f1", "error_accuracy", "correct_accuracy"):
        value = scores[key]
        out[f"processbench_{key}"] = float("nan") if value is None else float(value)
    return out


def run(s: Settings) -> dict[str, Any]:
    from rubricate.train import runtime
    from rubricate.train.data import check_columns, load_splits

    runtime.require()
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # PRMTrainer lives in trl.experimental until 1.14
    from transformers import AutoModelForTokenClassification
    from trl.experimental.prm import PRMConfig, PRMTrainer

    from rubricate.train.settings import trl_config

    train, held = load_splits(s.data, s.eval_data)
    check_columns("prm", train, s.data)
    if held is not None:
        check_columns("prm", held, s.eval_data or s.data)
    # The config first: under DeepSpeed ZeRO-3 it makes from_pretrained load the model already sharded.
    args = trl_config(s, PRMConfig, has_eval=held is not None, max_length=s.max_length,
                      step_separator=s.step_separator)
    tok = runtime.tokenizer(s.model)
    model = runtime.load_model(AutoModelForTokenClassification, s.model, s, num_labels=2,
                               id2label={0: "bad", 1: "good"}, label2id={"bad": 0, "good": 1})
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tok.pad_token_id

    def compute_metrics(eval_pred) -> dict[str, float]:
        return step_metrics(eval_pred.predictions, eval_pred.label_ids)

    trainer = PRMTrainer(model=model, args=args, train_dataset=train, eval_dataset=held, processing_class=tok,
                         compute_metrics=compute_metrics, preprocess_logits_for_metrics=_classes,
                         peft_config=runtime.lora_config(s, "TOKEN_CLS"))
    trainer.train(resume_from_checkpoint=runtime.checkpoint(s))
    metrics = runtime.evaluate(trainer) if held is not None else None
    return runtime.finish(trainer, s, metrics)


def _classes(logits, labels):
    # Keep the predicted class, not the logits: evaluation gathers (rows x tokens) instead of x 2 floats.
    if isinstance(logits, tuple):
        logits = logits[0]
    return logits.argmax(dim=-1)
