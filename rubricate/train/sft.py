"""`rubricate train sft`: supervised fine-tuning by TRL's SFTTrainer, for critique and verifier models.

- a `trl-sft` export (conversational prompt-completion: the problem and a verified critique-guided
  refinement) trains as it is; the loss is on the completion only (SFTTrainer's default for
  prompt-completion data);
- a `thinkprm-sft` export (`messages`: ThinkPRM's verification prompt and a judge's chain) becomes
  prompt-completion too, the chain being the last (assistant) message, so the verifier learns to write
  chains, not to repeat prompts. Only the columns SFTTrainer reads are kept.
"""

from __future__ import annotations

from typing import Any

from rubricate.train.settings import Settings


def as_prompt_completion(dataset):
    """The columns SFTTrainer reads: `prompt` and `completion` (from `messages` when that is what the
    export wrote)."""
    if {"prompt", "completion"} <= set(dataset.column_names):
        return dataset.select_columns(["prompt", "completion"])

    def split(row: dict) -> dict:
        messages = row["messages"]
        return {"prompt": messages[:-1], "completion": messages[-1:]}

    return dataset.map(split, remove_columns=dataset.column_names)


def run(s: Settings) -> dict[str, Any]:
    from rubricate.train import runtime
    from rubricate.train.data import check_columns, load_splits

    runtime.require()
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    from rubricate.train.settings import trl_config

    train, held = load_splits(s.data, s.eval_data)
    check_columns("sft", train, s.data)
    train = as_prompt_completion(train)
    if held is not None:
        check_columns("sft", held, s.eval_data or s.data)
        held = as_prompt_completion(held)
    args = trl_config(s, SFTConfig, has_eval=held is not None, max_length=s.max_length)  # before the model: ZeRO-3
    tok = runtime.tokenizer(s.model)
    model = runtime.load_model(AutoModelForCausalLM, s.model, s)
    trainer = SFTTrainer(model=model, args=args, train_dataset=train, eval_dataset=held, processing_class=tok,
                         peft_config=runtime.lora_config(s, "CAUSAL_LM"))
    runtime.check_not_empty(trainer, s)
    trainer.train(resume_from_checkpoint=runtime.checkpoint(s))
    metrics = runtime.evaluate(trainer) if held is not None else None
    return runtime.finish(trainer, s, metrics)
