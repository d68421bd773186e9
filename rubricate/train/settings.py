"""The options of `rubricate train`, from defaults, a `--config FILE.yaml` and flags (in that order,
each overriding the one before), and the TRL configs built from them.

A YAML file uses the flags' names (`learning_rate` or `learning-rate`); a `trl:` mapping passes any
other field of the TRL config (or transformers' TrainingArguments) through as it is, e.g.
`trl: {weight_decay: 0.01, lr_scheduler_type: cosine}`. The settings a run used are written to
`OUTPUT/rubricate_train.yaml`, so `--config OUTPUT/rubricate_train.yaml` repeats it.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rubricate.errors import UsageError

# Learning rates where a method's source says one: TRL's PRMConfig and SFTConfig defaults, and
# Critique-GRPO's released run script (1e-6), which is also TRL's GRPOConfig default.
LEARNING_RATES = {"prm": 1e-5, "srl": 1e-6, "critique-grpo": 1e-6, "sft": 2e-5}


@dataclass
class Settings:
    method: str
    data: str
    model: str
    output: str
    eval_data: str | None = None
    # optimisation
    learning_rate: float | None = None  # None: LEARNING_RATES[method]
    epochs: float = 1.0
    max_steps: int = -1
    batch_size: int = 8  # per device; GRPO methods count completions (prompts x generations)
    eval_batch_size: int | None = None
    grad_accum: int = 1
    seed: int = 42
    max_length: int | None = 1024  # prm, sft: prompt + completion tokens
    max_completion_length: int = 512  # srl, critique-grpo: generated tokens
    bf16: bool | None = None  # None: where the GPU supports it
    gradient_checkpointing: bool | None = None  # None: the TRL config's default (on)
    # LoRA through peft
    lora: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_targets: str = "all-linear"
    # checkpoints and logs
    logging_steps: int = 10
    save_steps: int = 500
    save_total_limit: int | None = 2
    eval_steps: int | None = None
    resume: bool | str = False  # True: the last checkpoint in `output`; a path: that checkpoint
    report_to: str = "auto"  # auto: tensorboard and/or wandb when installed; none; or a comma list
    # GRPO methods
    num_generations: int = 8
    temperature: float = 1.0
    top_p: float = 1.0
    use_vllm: bool = False
    # prm
    step_separator: str = "\n"
    # srl: groups whose rewards' standard deviation is below this are dropped (dynamic sampling)
    min_reward_std: float = 0.01
    # critique-grpo
    critique: str = "ground-truth"  # or cot (needs critic_model)
    critic_model: str | None = None
    critic_api_base: str | None = None
    critic_template: str = "critique_grpo"
    critic_max_tokens: int | None = None
    critic_concurrency: int = 16
    refinements: int = 1  # failed rollouts refined per group; the best refinement is kept
    shaping: float = 0.1  # f(p) = p / (p + shaping) on refinement tokens
    entropy_coef: float = 0.001
    # anything else for the TRL config, verbatim
    trl: dict[str, Any] = field(default_factory=dict)

    @property
    def lr(self) -> float:
        return self.learning_rate if self.learning_rate is not None else LEARNING_RATES[self.method]


FIELDS = {f.name for f in dataclasses.fields(Settings)}
_REQUIRED = ("data", "model", "output")


def read_yaml(path: str) -> dict[str, Any]:
    import yaml

    p = Path(path)
    if not p.is_file():
        raise UsageError(f"--config {path}: no such file")
    try:
        data = yaml.safe_load(p.read_text("utf-8")) or {}
    except yaml.YAMLError as exc:
        raise UsageError(f"--config {path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise UsageError(f"--config {path}: expected a mapping of option names to values")
    out = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if name not in FIELDS or name == "method":
            raise UsageError(f"--config {path}: unknown option {key!r}",
                             hint="Options: " + ", ".join(sorted(FIELDS - {"method"}))
                                  + "; TRL fields go under `trl:`.")
        out[name] = value
    if "trl" in out and not isinstance(out["trl"], dict):
        raise UsageError(f"--config {path}: `trl` must be a mapping of TRL config fields")
    return out


def resolve(method: str, flags: dict[str, Any], config: str | None = None) -> Settings:
    """Defaults, then the YAML file, then the flags that were given (None means not given)."""
    values: dict[str, Any] = read_yaml(config) if config else {}
    trl_extra = dict(values.pop("trl", None) or {})
    for key, value in flags.items():
        if value is not None:
            values[key] = value
    missing = [k for k in _REQUIRED if not values.get(k)]
    if missing:
        raise UsageError("missing " + ", ".join(("DATA" if k == "data" else f"--{k}") for k in missing),
                         hint="Give them as arguments or in the --config file.")
    settings = Settings(method=method, trl=trl_extra, **{k: v for k, v in values.items() if k in FIELDS})
    check(settings)
    return settings


def check(s: Settings) -> None:
    if s.batch_size < 1 or s.grad_accum < 1:
        raise UsageError("--batch-size and --grad-accum must be at least 1")
    if s.method in ("srl", "critique-grpo"):
        if s.num_generations < 2:
            raise UsageError("--num-generations must be at least 2: GRPO compares rollouts of one prompt")
        if s.batch_size % s.num_generations:
            raise UsageError(f"--batch-size {s.batch_size} is not a multiple of --num-generations {s.num_generations}",
                             hint="For GRPO methods the batch counts completions: prompts x generations.")
    if s.method == "critique-grpo":
        if s.critique not in ("ground-truth", "cot"):
            raise UsageError(f"--critique {s.critique!r}: ground-truth or cot")
        if s.critique == "cot" and not s.critic_model:
            raise UsageError("--critique cot needs --critic-model",
                             hint="For example --critic-model openai/gpt-4o-mini.")
        if s.refinements < 1:
            raise UsageError("--refinements must be at least 1")
        if s.shaping <= 0:
            raise UsageError("--shaping must be positive (f(p) = p / (p + shaping))")
    if s.resume and not isinstance(s.resume, (bool, str)):
        raise UsageError("resume: true, or the path of a checkpoint")


def report_to(spec: str) -> list[str] | str:
    """`auto`: TensorBoard when installed, W&B when installed and configured (a key or WANDB_MODE)."""
    if spec == "auto":
        found = []
        if importlib.util.find_spec("tensorboard") or importlib.util.find_spec("tensorboardX"):
            found.append("tensorboard")
        if importlib.util.find_spec("wandb") and (os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_MODE")):
            found.append("wandb")
        return found or "none"
    if spec in ("none", ""):
        return "none"
    return [p.strip() for p in spec.split(",") if p.strip()]


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def bf16(setting: bool | None) -> bool:
    import torch

    supported = _cuda() and torch.cuda.is_bf16_supported()
    if setting and not supported:
        raise UsageError("--bf16: this machine has no GPU with bfloat16 support")
    return supported if setting is None else setting


def trl_config(s: Settings, cls: type, **specific: Any):
    """A TRL config (a TrainingArguments subclass) from the settings, the method's own fields, and
    the `trl:` pass-through, which wins."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    names = set(fields)
    unknown = sorted(set(s.trl) - names)
    if unknown:
        raise UsageError(f"trl: {', '.join(unknown)} {'is' if len(unknown) == 1 else 'are'} not a field of "
                         f"{cls.__name__}")
    has_eval = specific.pop("has_eval", False)
    kwargs: dict[str, Any] = dict(
        output_dir=s.output, learning_rate=s.lr, num_train_epochs=s.epochs, max_steps=s.max_steps,
        per_device_train_batch_size=s.batch_size, per_device_eval_batch_size=s.eval_batch_size or s.batch_size,
        gradient_accumulation_steps=s.grad_accum, seed=s.seed, bf16=bf16(s.bf16), fp16=False,
        logging_steps=s.logging_steps, logging_first_step=True,
        save_strategy="steps", save_steps=s.save_steps, save_total_limit=s.save_total_limit,
        eval_strategy="steps" if (has_eval and s.eval_steps) else "no", eval_steps=s.eval_steps,
        report_to=report_to(s.report_to),
    )
    if not _cuda():
        kwargs["dataloader_pin_memory"] = False  # transformers' default pins, and warns where nothing can be
    # transformers 5 renamed gradient_checkpointing to activation_checkpointing (the old name warns).
    checkpointing = s.gradient_checkpointing
    if checkpointing is None:
        checkpointing = bool(fields["gradient_checkpointing"].default)
    name = "activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"
    kwargs[name] = checkpointing
    kwargs.update(specific)
    kwargs.update(s.trl)
    return cls(**kwargs)


def dump(s: Settings, path: Path) -> None:
    import yaml

    # `resume` stays out: repeating a run with --config starts it afresh unless --resume is given
    data = {k: v for k, v in dataclasses.asdict(s).items() if k not in ("method", "resume")}
    data["learning_rate"] = s.lr
    path.write_text(f"# rubricate train {s.method}\n" + yaml.safe_dump(data, sort_keys=False), "utf-8")
