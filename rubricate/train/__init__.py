"""`rubricate train`: train a model on what `rubricate export` wrote, with TRL doing the training.

One module per method, each a short script around a TRL trainer:
- `prm`: trl.experimental.prm.PRMTrainer on a `trl-stepwise` export, scored at the end (and every
  `--eval-steps`) by step accuracy and ProcessBench F1 on the held-out split (`rubricate eval`'s code);
- `srl`: trl.GRPOTrainer with the SRL reward (`rubricate.rewards.srl_reward`) and SRL's dynamic sampling;
- `critique_grpo`: Critique-GRPO as a subclass of trl.GRPOTrainer (rollouts, critiques, one refinement
  per group, the shaped off-policy loss);
- `sft`: trl.SFTTrainer on a `trl-sft` or `thinkprm-sft` export.

`settings` holds the options (flags, or a YAML file) and turns them into TRL configs; `data` finds the
train and held-out splits of an export; `runtime` loads models, LoRA adapters and reports. Nothing here
imports torch, transformers or TRL at import time: `rubricate --help` stays fast, and the `train`
extra is needed only to train.

Tested with TRL 1.13.0 (transformers 5.24, peft 0.21, accelerate 1.15, torch 2.13). The Critique-GRPO
trainer overrides GRPOTrainer internals (`_generate_and_score_completions`, `_calculate_rewards`,
`_compute_loss`, `_generate_single_turn`), which TRL does not promise to keep stable; `TESTED_TRL` is
checked at start and a different version gets a warning.
"""

TESTED_TRL = "1.13.0"
METHODS = ("prm", "srl", "critique-grpo", "sft")
