"""What every trainer module needs around its TRL trainer: the check that the `train` extra is
installed, the tokenizer, a LoRA config, the checkpoint to resume from, and the end of a run (the
model, the metrics and the settings written to the output folder, a summary on stderr)."""

from __future__ import annotations

import importlib.util
import json
import sys
import warnings
from pathlib import Path
from typing import Any

from rubricate.errors import RubricateError, UsageError
from rubricate.train import TESTED_TRL
from rubricate.train.settings import Settings, dump

INSTALL_HINT = ('On a CPU-only machine: pip install torch==2.13.0, then pip install -e ".[train]" '
                '(an unpinned torch pulls a multi-GB CUDA build).')


def require() -> None:
    """Fail with an install hint when the `train` extra is missing; warn on an untested TRL."""
    missing = [name for name in ("torch", "transformers", "trl", "peft", "accelerate")
               if importlib.util.find_spec(name) is None]
    if missing:
        raise RubricateError(f"`rubricate train` needs {', '.join(missing)} (the `train` extra)", hint=INSTALL_HINT)
    import trl

    if trl.__version__ != TESTED_TRL:
        warnings.warn(f"rubricate train is tested with TRL {TESTED_TRL}; this is TRL {trl.__version__}", stacklevel=2)


def tokenizer(path: str):
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise UsageError(f"--model {path}: no tokenizer could be loaded ({exc})") from exc
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(cls: Any, path: str, settings: Settings, **kwargs: Any):
    import torch

    from rubricate.train.settings import bf16

    dtype = torch.bfloat16 if bf16(settings.bf16) else torch.float32
    try:
        return cls.from_pretrained(path, dtype=dtype, **kwargs)
    except (OSError, ValueError) as exc:
        raise UsageError(f"--model {path}: could not be loaded ({exc})") from exc


def lora_config(s: Settings, task_type: str):
    if not s.lora:
        return None
    from peft import LoraConfig

    targets: str | list[str] = s.lora_targets if s.lora_targets == "all-linear" else \
        [t.strip() for t in s.lora_targets.split(",") if t.strip()]
    # A PRM's classification head is new: it must train and be saved with the adapter.
    extra = {"modules_to_save": ["score"]} if task_type == "TOKEN_CLS" else {}
    return LoraConfig(r=s.lora_r, lora_alpha=s.lora_alpha, lora_dropout=s.lora_dropout, target_modules=targets,
                      task_type=task_type, **extra)


def check_not_empty(trainer: Any, s: Settings) -> None:
    """TRL drops examples that tokenize to nothing trainable (a prompt that fills --max-length)."""
    if len(trainer.train_dataset) == 0:
        raise UsageError(f"no training example fits --max-length {s.max_length}: every prompt fills it",
                         hint="Raise --max-length.")


def checkpoint(s: Settings) -> str | bool | None:
    """What to hand `trainer.train(resume_from_checkpoint=...)`."""
    if not s.resume:
        return None
    if isinstance(s.resume, str) and s.resume not in ("true", "True"):
        if not Path(s.resume).is_dir():
            raise UsageError(f"--resume-from {s.resume}: no such checkpoint folder")
        return s.resume
    from transformers.trainer_utils import get_last_checkpoint

    last = get_last_checkpoint(s.output) if Path(s.output).is_dir() else None
    if last is None:
        raise UsageError(f"--resume: no checkpoint in {s.output}", hint="Checkpoints are saved every --save-steps.")
    return last


def evaluate(trainer: Any) -> dict[str, Any]:
    """The held-out scores at the end of training: the evaluation the trainer just ran at its last step
    (transformers evaluates there when --eval-steps is on), else a new one. Saved as eval_results.json."""
    step = trainer.state.global_step
    last = next((h for h in reversed(trainer.state.log_history) if "eval_loss" in h or "eval_runtime" in h), None)
    if last is not None and last.get("step") == step:
        metrics = {k: v for k, v in last.items() if k.startswith("eval_") or k == "epoch"}
    else:
        metrics = trainer.evaluate()
    trainer.save_metrics("eval", metrics)
    return metrics


def finish(trainer: Any, s: Settings, metrics: dict[str, Any] | None = None) -> dict[str, Any]:
    """Save the model, tokenizer, trainer state, metrics and settings; print a summary on stderr."""
    out = Path(s.output)
    trainer.save_model(str(out))
    trainer.save_state()
    dump(s, out / "rubricate_train.yaml")
    history = trainer.state.log_history
    summary: dict[str, Any] = {"method": s.method, "steps": trainer.state.global_step,
                               "train": next((h for h in reversed(history) if "train_runtime" in h), {})}
    if metrics:
        summary["eval"] = metrics
    (out / "rubricate_train.json").write_text(json.dumps(summary, indent=2, default=float), "utf-8")
    if trainer.is_world_process_zero():
        _print(summary, out)
    return summary


def _print(summary: dict[str, Any], out: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"rubricate train {summary['method']}: {summary['steps']} steps -> {out}",
                  show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    for key, value in list(summary["train"].items()) + list((summary.get("eval") or {}).items()):
        if isinstance(value, float):
            value = f"{value:.4g}"
        if isinstance(value, (int, str)):
            table.add_row(key, str(value))
    Console(stderr=True, file=sys.stderr).print(table)
