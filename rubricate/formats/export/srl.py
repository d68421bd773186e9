"""Supervised Reinforcement Learning (Deng et al., "Supervised Reinforcement Learning: From Expert
Trajectories to Step-wise Reasoning", arXiv 2510.25992): one row per expert step.

An expert solution of N steps gives N-1 rows: for k = 1 .. N-1 the prompt holds the problem and the
expert's steps 1..k, and the model is to write a private monologue in <think>...</think> and then
step k+1, the row's `expert_action`. rubricate.rewards.srl_reward scores the text after </think>
against it (difflib SequenceMatcher ratio, -1 when the output is malformed), as a TRL GRPOTrainer
reward function that reads the `expert_action` column.

The system turn is the SRL prompt for math (its "inner monologue" template, worded as public
reimplementations of the paper reproduce it, e.g. chenyingtz/cs234-final_project src/prompts.py);
the user turn is the problem and the steps so far. Expert steps come from `reference.steps` (the
gsm8k preset gives GSM8K's solution lines), else `reference.solution` segmented like a response.
"""

from __future__ import annotations

from rubricate.formats.export.common import ExportOptions, expert_steps
from rubricate.formats.export.errors import Unusable

SRL_SYSTEM = (
    "You are a helpful assistant for solving mathematical problems. A user will provide a math problem, "
    "which may include a partial solution. Your task is to continue the solution by providing the very next "
    "logical step.\n\n"
    "A user will ask you to solve a task. You should first draft your thinking process (inner monologue). "
    "Then, generate the solution.\n\n"
    "Your response format must follow the template below:\n"
    "<think>\n"
    "Your thoughts or/and draft, like working through an exercise on scratch paper. Be as casual and as long "
    "as you want until you are confident to generate a correct solution.\n"
    "</think>\n"
    "Provide only the single, next step to continue the solution. Do not solve the entire problem."
)


def user_prompt(problem: str, previous: list[str]) -> str:
    return f"Problem:\n{problem}\n\nPartial solution:\n" + "\n".join(previous)


def srl(record: dict, opts: ExportOptions) -> list[dict]:
    problem = record.get("problem")
    if not isinstance(problem, str) or not problem.strip():
        raise Unusable("no problem")
    steps = [s for s in expert_steps(record) if s.strip()]
    if len(steps) < 2:
        raise Unusable(f"the expert solution has {len(steps)} step(s); SRL needs at least 2")
    system = SRL_SYSTEM if opts.system is None else opts.system
    rows = []
    for k in range(1, len(steps)):
        content = user_prompt(problem, steps[:k])
        if opts.instruction:
            content += "\n\n" + opts.instruction
        prompt = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": content}]
        rows.append({"prompt": prompt, "expert_action": steps[k], "id": f"{record.get('id')}#step{k}",
                     "record_id": record.get("id"), "step": k, "steps_total": len(steps)})
    return rows
