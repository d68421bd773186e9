"""Exports: records -> the rows a training framework reads, in its exact column names.

Each exporter is a pure function `(record, ExportOptions) -> list[row]` that raises `Unusable(reason)`
when the record lacks what the format needs; `rubricate export` counts and lists those records, never
drops them silently. The registry below is the mechanism: a new format is a function, one line in
`EXPORTERS`, one in `FORMATS`, and a test that loads its rows with the consumer's own code.

Module docstrings name the sources each format follows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from rubricate.formats.export.common import ExportOptions
from rubricate.formats.export.errors import Unusable
from rubricate.formats.export.labels import LabelPolicy
from rubricate.formats.export.prm import math_shepherd, openrlhf_prm, processbench
from rubricate.formats.export.srl import srl
from rubricate.formats.export.thinkprm import thinkprm_sft
from rubricate.formats.export.trl import trl_dpo, trl_grpo, trl_sft, trl_stepwise
from rubricate.formats.export.verl import critique_grpo, verl

Exporter = Callable[[dict, ExportOptions], list]

EXPORTERS: dict[str, Exporter] = {
    "critique-grpo": critique_grpo,
    "srl": srl,
    "trl-stepwise": trl_stepwise,
    "math-shepherd": math_shepherd,
    "openrlhf-prm": openrlhf_prm,
    "trl-grpo": trl_grpo,
    "verl": verl,
    "trl-sft": trl_sft,
    "trl-dpo": trl_dpo,
    "thinkprm-sft": thinkprm_sft,
    "processbench": processbench,
}

# Papers to cite, by key; FORMATS names which apply to each format.
PAPERS = {
    "critique-grpo": ("Zhang et al., 2025. Critique-GRPO: Advancing LLM Reasoning with Natural Language and "
                      "Numerical Feedback. arXiv:2506.03106"),
    "srl": ("Deng et al., 2025. Supervised Reinforcement Learning: From Expert Trajectories to Step-wise "
            "Reasoning. arXiv:2510.25992"),
    "prm800k": "Lightman et al., 2023. Let's Verify Step by Step. arXiv:2305.20050",
    "math-shepherd": ("Wang et al., 2024. Math-Shepherd: Verify and Reinforce LLMs Step-by-step without Human "
                      "Annotations. arXiv:2312.08935"),
    "processbench": ("Zheng et al., 2024. ProcessBench: Identifying Process Errors in Mathematical Reasoning. "
                     "arXiv:2412.06559"),
    "thinkprm": "Khalifa et al., 2025. Process Reward Models That Think. arXiv:2504.16828",
    "grpo": ("Shao et al., 2024. DeepSeekMath: Pushing the Limits of Mathematical Reasoning in Open Language "
             "Models. arXiv:2402.03300"),
    "dpo": ("Rafailov et al., 2023. Direct Preference Optimization: Your Language Model is Secretly a Reward "
            "Model. arXiv:2305.18290"),
    "verl": "Sheng et al., 2024. HybridFlow: A Flexible and Efficient RLHF Framework. arXiv:2409.19256",
    "openrlhf": ("Hu et al., 2024. OpenRLHF: An Easy-to-use, Scalable and High-performance RLHF Framework. "
                 "arXiv:2405.11143"),
    "stepwise": "Uesato et al., 2022. Solving math word problems with process- and outcome-based feedback. "
                "arXiv:2211.14275",
}


@dataclass(frozen=True)
class Format:
    consumer: str
    policy: LabelPolicy = field(default_factory=LabelPolicy)  # the consumer's label convention
    per_problem: bool = False  # one row per problem: rollouts of one problem give it once
    uses_labels: bool = False
    papers: tuple[str, ...] = ()
    help: str = ""


FORMATS: dict[str, Format] = {
    "critique-grpo": Format("Critique-GRPO (verl fork) parquet", per_problem=True,
                            papers=("critique-grpo", "verl"),
                            help="verl rows with the expert solution as `target`, for Critique-GRPO"),
    "srl": Format("TRL GRPOTrainer + rubricate.rewards.srl_reward", papers=("srl", "grpo"),
                  help="one row per expert step, with `expert_action` for the SRL reward"),
    "trl-stepwise": Format("TRL PRMTrainer (stepwise supervision)", uses_labels=True,
                           papers=("stepwise", "prm800k"), help="prompt, completions, labels (bools)"),
    "math-shepherd": Format("Math-Shepherd PRM format", uses_labels=True,
                            policy=LabelPolicy(threshold=1e-6), papers=("math-shepherd",),
                            help="input with ' ки' after each step, label with +/-; default threshold: "
                                 "any rollout that reached the answer (Math-Shepherd's hard estimate)"),
    "openrlhf-prm": Format("OpenRLHF train_prm", uses_labels=True, papers=("openrlhf", "math-shepherd"),
                           help="input with the placeholder 'ки' after each step, value: one label each"),
    "trl-grpo": Format("TRL GRPOTrainer", per_problem=True, papers=("grpo",),
                       help="conversational prompt, `solution` for the reward functions"),
    "verl": Format("verl RLHFDataset parquet", per_problem=True, papers=("verl", "grpo"),
                   help="data_source, prompt, ability, reward_model, extra_info"),
    "trl-sft": Format("TRL SFTTrainer (prompt-completion)", papers=("critique-grpo",),
                      help="the problem and a correct critique-guided refinement"),
    "trl-dpo": Format("TRL DPOTrainer (preference)", papers=("dpo", "critique-grpo"),
                      help="chosen: a correct refinement; rejected: the failed original"),
    "thinkprm-sft": Format("ThinkPRM SFT / TRL SFTTrainer (messages)", papers=("thinkprm", "prm800k"),
                           help="judge verification chains that agree with the gold labels"),
    "processbench": Format("ProcessBench", uses_labels=True, papers=("processbench",),
                           help="id, generator, problem, steps, final_answer_correct, label"),
}

assert FORMATS.keys() == EXPORTERS.keys()

__all__ = ["EXPORTERS", "FORMATS", "PAPERS", "ExportOptions", "LabelPolicy", "Unusable"]
