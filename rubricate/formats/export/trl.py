"""TRL's dataset formats (huggingface/trl, docs/source/dataset_formats.md), as its trainers read them.

- `trl-stepwise`: stepwise supervision, `prompt` (text), `completions` (the steps) and `labels` (one
  bool per step), what trl.experimental.prm.PRMTrainer.tokenize_row reads (it appends the step
  separator, "\\n" by default, to each completion and puts the label on its last token). Rows as TRL's
  own converters write them (examples/datasets/math_shepherd.py, prm800k.py).
- `trl-grpo`: prompt-only, conversational: `prompt` = [{role: user, content}], plus `solution` (the
  reference answer; trl.rewards.accuracy_reward reads that column, and rubricate.rewards.answer_reward
  too) and `id`. GRPOTrainer passes every column but `prompt` to reward functions as keyword arguments.
  The question goes in as written, as in TRL's examples/datasets/deepmath_103k.py (`--instruction`
  appends one).
- `trl-sft`: prompt-completion, conversational: the problem, and a correct critique-guided refinement
  (feedback.refinement: the chosen one when it is correct, else the first correct one) as the
  assistant's answer.
- `trl-dpo`: preference, conversational: `prompt`, `chosen` = that refinement, `rejected` = the
  original response, for records whose response was verified wrong.
"""

from __future__ import annotations

from rubricate.formats.export.common import ExportOptions, answer, outcome, refinement_sample, user_turn
from rubricate.formats.export.errors import Unusable
from rubricate.formats.export.labels import labelled_steps


def trl_stepwise(record: dict, opts: ExportOptions) -> list[dict]:
    pairs = labelled_steps(record, opts.policy, opts.labels)
    problem = record.get("problem")
    if not isinstance(problem, str) or not problem.strip():
        raise Unusable("no problem")
    return [{"prompt": problem, "completions": [s for s, _ in pairs],
             "labels": [opts.policy.good(v) for _, v in pairs]}]


def trl_grpo(record: dict, opts: ExportOptions) -> list[dict]:
    return [{"prompt": user_turn(record, opts.instruction, opts.system), "solution": answer(record),
             "id": record.get("id")}]


def trl_sft(record: dict, opts: ExportOptions) -> list[dict]:
    sample = refinement_sample(record)
    return [{"prompt": user_turn(record, opts.instruction, opts.system),
             "completion": [{"role": "assistant", "content": sample["text"]}], "id": record.get("id")}]


def trl_dpo(record: dict, opts: ExportOptions) -> list[dict]:
    verdict = outcome(record).get("correct")
    if verdict is not False:
        raise Unusable("the original response was not verified wrong (feedback.outcome.correct is "
                       f"{verdict!r}): no rejected answer")
    response = record.get("response")
    if not isinstance(response, str) or not response.strip():
        raise Unusable("no response to reject")
    sample = refinement_sample(record)
    return [{"prompt": user_turn(record, opts.instruction, opts.system),
             "chosen": [{"role": "assistant", "content": sample["text"]}],
             "rejected": [{"role": "assistant", "content": response}], "id": record.get("id")}]
