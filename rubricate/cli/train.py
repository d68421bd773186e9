"""`rubricate train prm|srl|critique-grpo|sft DATA --model PATH --output DIR`: train on an export with TRL.

Every option can also come from `--config FILE.yaml` (the same names); a flag given on the command line
wins over the file. Nothing here imports torch, transformers or TRL until a command runs.
"""

from __future__ import annotations

import importlib
from enum import Enum
from typing import Annotated, Any, Optional

import typer

from rubricate.cli import options as o

train_app = typer.Typer(
    name="train", no_args_is_help=True, add_completion=False,
    help="Train on an export with TRL: a PRM, SRL, Critique-GRPO or SFT (the `train` extra). On several GPUs: "
         "accelerate launch --config_file rubricate/train/configs/zero3.yaml -m rubricate.cli.main train ...")

MODULES = {"prm": "rubricate.train.prm", "srl": "rubricate.train.srl",
           "critique-grpo": "rubricate.train.critique_grpo", "sft": "rubricate.train.sft"}


class Critique(str, Enum):
    ground_truth = "ground-truth"
    cot = "cot"


def _opt(*names: str, help: str, **kw: Any) -> Any:
    return typer.Option(*names, help=help, show_default=False, **kw)


Data = Annotated[Optional[str], typer.Argument(
    help="The export: a datasets folder (its train and test splits), a folder of split files, a .jsonl or "
         ".parquet file (NAME.train.jsonl finds NAME.test.jsonl), or hf:owner/name.", show_default=False)]
Model = Annotated[Optional[str], _opt("--model", "-m", help="The model to start from: a folder or a Hub id.")]
Output = Annotated[Optional[str], _opt("--output", "-o", help="Folder for checkpoints, logs and the trained model.")]
Config = Annotated[Optional[str], _opt("--config", help="A YAML file of these options (underscores or dashes); "
                                                        "a `trl:` mapping passes TRL config fields through.")]
EvalData = Annotated[Optional[str], _opt("--eval-data", help="The held-out split, when DATA has none.")]
Lr = Annotated[Optional[float], _opt("--learning-rate", "--lr", help="Default: prm 1e-5, srl and critique-grpo "
                                                                       "1e-6, sft 2e-5.")]
Epochs = Annotated[Optional[float], _opt("--epochs", help="Passes over the train split (default 1).")]
MaxSteps = Annotated[Optional[int], _opt("--max-steps", help="Stop after this many optimizer steps (wins over "
                                                             "--epochs).")]
Batch = Annotated[Optional[int], _opt("--batch-size", help="Per device (default 8); GRPO methods count completions: "
                                                           "prompts x --num-generations.")]
EvalBatch = Annotated[Optional[int], _opt("--eval-batch-size", help="Per device (default: --batch-size).")]
Accum = Annotated[Optional[int], _opt("--grad-accum", help="Gradient accumulation steps (default 1).")]
Seed = Annotated[Optional[int], _opt("--seed", help="Default 42.")]
Bf16 = Annotated[Optional[bool], _opt("--bf16/--no-bf16", help="bfloat16 (default: where the GPU supports it).")]
Checkpointing = Annotated[Optional[bool], _opt(
    "--gradient-checkpointing/--no-gradient-checkpointing",
    help="Recompute activations in the backward pass: less memory, more compute (default on, as in TRL).")]
Lora = Annotated[Optional[bool], _opt("--lora/--no-lora", help="Train a LoRA adapter (peft) instead of all weights.")]
LoraR = Annotated[Optional[int], _opt("--lora-r", help="LoRA rank (default 16).")]
LoraAlpha = Annotated[Optional[int], _opt("--lora-alpha", help="Default 32.")]
LoraDropout = Annotated[Optional[float], _opt("--lora-dropout", help="Default 0.05.")]
LoraTargets = Annotated[Optional[str], _opt("--lora-targets", help="Module names, comma-separated, or all-linear "
                                                                   "(default).")]
LoggingSteps = Annotated[Optional[int], _opt("--logging-steps", help="Log every N steps (default 10).")]
SaveSteps = Annotated[Optional[int], _opt("--save-steps", help="Checkpoint every N steps (default 500).")]
SaveLimit = Annotated[Optional[int], _opt("--save-total-limit", help="Checkpoints kept (default 2).")]
EvalSteps = Annotated[Optional[int], _opt("--eval-steps", help="Evaluate on the held-out split every N steps "
                                                               "(GRPO methods evaluate only when given).")]
Resume = Annotated[Optional[bool], _opt("--resume", help="Continue from the last checkpoint in --output.")]
ResumeFrom = Annotated[Optional[str], _opt("--resume-from", help="Continue from this checkpoint folder.")]
ReportTo = Annotated[Optional[str], _opt("--report-to", help="auto (TensorBoard / W&B when installed; the default), "
                                                             "none, or a comma list.")]
MaxLength = Annotated[Optional[int], _opt("--max-length", help="Tokens of prompt + completion (default 1024).")]
MaxCompletion = Annotated[Optional[int], _opt("--max-completion-length", help="Tokens a rollout may generate "
                                                                               "(default 512).")]
Generations = Annotated[Optional[int], _opt("--num-generations", "-n", help="Rollouts per prompt (default 8).")]
Temperature = Annotated[Optional[float], _opt("--temperature", help="Sampling temperature (default 1.0).")]
TopP = Annotated[Optional[float], _opt("--top-p", help="Default 1.0.")]
Vllm = Annotated[Optional[bool], _opt("--vllm/--no-vllm", help="Generate with vLLM (colocated; must be installed).")]


# Options every method takes, and those of the two GRPO methods, declared once (options.shared_options).
COMMON: dict[str, tuple[Any, Any]] = {
    "data": (Data, None), "model": (Model, None), "output": (Output, None), "config": (Config, None),
    "eval_data": (EvalData, None), "learning_rate": (Lr, None), "epochs": (Epochs, None),
    "max_steps": (MaxSteps, None), "batch_size": (Batch, None), "eval_batch_size": (EvalBatch, None),
    "grad_accum": (Accum, None), "seed": (Seed, None), "bf16": (Bf16, None),
    "gradient_checkpointing": (Checkpointing, None), "lora": (Lora, None), "lora_r": (LoraR, None),
    "lora_alpha": (LoraAlpha, None), "lora_dropout": (LoraDropout, None), "lora_targets": (LoraTargets, None),
    "logging_steps": (LoggingSteps, None), "save_steps": (SaveSteps, None), "save_total_limit": (SaveLimit, None),
    "eval_steps": (EvalSteps, None), "resume": (Resume, None), "resume_from": (ResumeFrom, None),
    "report_to": (ReportTo, None), "debug": (o.Debug, False),
}
GRPO: dict[str, tuple[Any, Any]] = {
    "max_completion_length": (MaxCompletion, None), "num_generations": (Generations, None),
    "temperature": (Temperature, None), "top_p": (TopP, None), "use_vllm": (Vllm, None),
}


def _options(params: dict[str, tuple[Any, Any]]):
    return o.shared_options("flags", params, dict)


def _run(method: str, flags: dict[str, Any], **own: Any) -> None:
    from rubricate.train import runtime
    from rubricate.train.settings import resolve

    flags = {**flags, **own}
    config = flags.pop("config")
    flags.pop("debug", None)
    resume_from = flags.pop("resume_from", None)
    if resume_from:
        flags["resume"] = resume_from
    flags = {k: (v.value if isinstance(v, Enum) else v) for k, v in flags.items()}
    settings = resolve(method, flags, config)
    runtime.require()
    importlib.import_module(MODULES[method]).run(settings)


@train_app.command("prm")
@_options(COMMON)
def prm(flags: dict, max_length: MaxLength = None,
        step_separator: Annotated[Optional[str], _opt("--step-separator", help="Text after each step; the label "
                                                      "sits on its last token (default a newline).")] = None) -> None:
    """A process reward model on a trl-stepwise export (TRL's PRMTrainer); step accuracy and ProcessBench
    F1 on the held-out split at the end and every --eval-steps."""
    _run("prm", flags, max_length=max_length, step_separator=step_separator)


@train_app.command("srl")
@_options({**COMMON, **GRPO})
def srl(flags: dict, min_reward_std: Annotated[Optional[float], _opt(
        "--min-reward-std", help="Dynamic sampling: drop prompts whose rollouts' rewards have a smaller standard "
                                 "deviation (default 0.01; 0 keeps all).")] = None) -> None:
    """Supervised RL on an srl export (TRL's GRPOTrainer with the SRL reward and dynamic sampling)."""
    _run("srl", flags, min_reward_std=min_reward_std)


@train_app.command("critique-grpo")
@_options({**COMMON, **GRPO})
def critique_grpo(
        flags: dict,
        critique: Annotated[Optional[Critique], _opt(
            "--critique", help="ground-truth (Critique-GRPO's simple_gt; the default) or cot (a critic model's "
                               "chain-of-thought critique).")] = None,
        critic_model: Annotated[Optional[str], _opt(
            "--critic-model", help="With --critique cot: openai/MODEL, anthropic/MODEL, any litellm provider/MODEL, "
                                   "local.")] = None,
        critic_api_base: Annotated[Optional[str], _opt("--critic-api-base", help="An OpenAI-compatible server "
                                                                                 "for the critic.")] = None,
        critic_template: Annotated[Optional[str], _opt(
            "--critic-template", help="The critic's prompt: a bundled name or a Jinja file (default "
                                      "critique_grpo, Critique-GRPO's own).")] = None,
        critic_max_tokens: Annotated[Optional[int], _opt("--critic-max-tokens", help="Tokens per critique.")] = None,
        critic_concurrency: Annotated[Optional[int], _opt("--critic-concurrency", help="Critic requests in "
                                                                                       "flight (default 16).")] = None,
        refinements: Annotated[Optional[int], _opt(
            "--refinements", help="Failed rollouts refined per group; the first correct refinement (else the "
                                  "best) replaces one rollout (default 1).")] = None,
        shaping: Annotated[Optional[float], _opt("--shaping", help="gamma of the refinement tokens' weight "
                                                                   "f(p) = p / (p + gamma) (default 0.1).")] = None,
        entropy_coef: Annotated[Optional[float], _opt("--entropy-coef", help="Entropy bonus (default "
                                                                             "0.001).")] = None) -> None:
    """Critique-GRPO on a critique-grpo (or trl-grpo) export: n-1 rollouts and one verified refinement per
    prompt, shaped refinement loss (a GRPOTrainer subclass)."""
    _run("critique-grpo", flags, critique=critique, critic_model=critic_model, critic_api_base=critic_api_base,
         critic_template=critic_template, critic_max_tokens=critic_max_tokens,
         critic_concurrency=critic_concurrency, refinements=refinements, shaping=shaping, entropy_coef=entropy_coef)


@train_app.command("sft")
@_options(COMMON)
def sft(flags: dict, max_length: MaxLength = None) -> None:
    """SFT of a critique or verifier model on a trl-sft or thinkprm-sft export (TRL's SFTTrainer)."""
    _run("sft", flags, max_length=max_length)
