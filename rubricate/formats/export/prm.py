"""Process-reward-model datasets that mark steps inside one text, and ProcessBench.

- `math-shepherd` (peiyi9979/Math-Shepherd, its dataset card; the PRM's model card builds its input as
  f"{question} {output}"): `input` = the problem, a space, then the steps one per line, each
  "Step i: ..." followed by " ки"; `label` = the same text with each "ки" replaced by "+" (good) or
  "-" (bad). Steps that already start with "Step i:" (an imported Math-Shepherd row) keep it, so an
  import exports the same row. `task` (GSM8K / MATH) when the record carries it.
- `openrlhf-prm` (OpenRLHF/OpenRLHF, openrlhf/datasets/process_reward_dataset.py and
  examples/scripts/train_prm_mistral.sh: `--input_key input --label_key value --placeholder_token ки
  --reward_tokens + -`): the same `input`, and `value` = one label per placeholder, "+" / "-" (or the
  labels as numbers with `--soft`: OpenRLHF takes a list of floats as reward values). OpenRLHF puts
  the i-th value on the i-th placeholder token, so the counts must match: they do by construction.
- `processbench` (QwenLM/ProcessBench, dataset/*.json): `id`, `generator`, `problem`, `steps`,
  `final_answer_correct`, `label` = the index of the earliest wrong step, -1 when none (from the step
  labels under the policy's threshold, or the labeller's own first_error_step). `generator` and
  `final_answer_correct` come from the input when it had them (else the outcome's verdict).

A problem or step that contains the tag itself cannot be encoded: such records are rejected.
"""

from __future__ import annotations

import re

from rubricate.formats.export.common import ExportOptions, outcome
from rubricate.formats.export.errors import Unusable
from rubricate.formats.export.labels import find, first_bad, labelled_steps, steps_of
from rubricate.formats.presets import MATH_SHEPHERD_TAG as TAG

_NUMBERED = re.compile(r"^[Ss]tep \d+:")


def tagged_input(problem: str, steps: list[str]) -> tuple[str, list[int]]:
    """Math-Shepherd's text and the position of each step's tag in it."""
    if TAG in problem or any(TAG in s for s in steps):
        raise Unusable(f"the text contains the step tag {TAG!r} itself")
    parts, positions, pos = [problem, " "], [], len(problem) + 1
    for i, step in enumerate(steps):
        line = step if _NUMBERED.match(step) else f"Step {i + 1}: {step}"
        if i:
            parts.append("\n")
            pos += 1
        parts.append(f"{line} ")
        pos += len(line) + 1
        positions.append(pos)
        parts.append(TAG)
        pos += len(TAG)
    return "".join(parts), positions


def _problem(record: dict) -> str:
    problem = record.get("problem")
    if not isinstance(problem, str) or not problem.strip():
        raise Unusable("no problem")
    return problem


def math_shepherd(record: dict, opts: ExportOptions) -> list[dict]:
    pairs = labelled_steps(record, opts.policy, opts.labels)
    text, positions = tagged_input(_problem(record), [s for s, _ in pairs])
    label = list(text)
    for at, (_, value) in zip(positions, pairs):
        label[at:at + len(TAG)] = ["+" if opts.policy.good(value) else "-"] + [""] * (len(TAG) - 1)
    row = {"input": text, "label": "".join(label)}
    meta = record.get("meta") if isinstance(record.get("meta"), dict) else {}
    if isinstance(meta.get("task"), str):
        row["task"] = meta["task"]
    return [row]


def openrlhf_prm(record: dict, opts: ExportOptions) -> list[dict]:
    pairs = labelled_steps(record, opts.policy, opts.labels)
    text, positions = tagged_input(_problem(record), [s for s, _ in pairs])
    values = [round(v, 6) for _, v in pairs] if opts.soft else \
        ["+" if opts.policy.good(v) else "-" for _, v in pairs]
    assert len(values) == len(positions) == text.count(TAG)
    return [{"input": text, "value": values}]


def processbench(record: dict, opts: ExportOptions) -> list[dict]:
    steps = steps_of(record)
    _, entry = find(record, opts.labels)
    labels = entry["labels"]
    if len(labels) != len(steps):
        raise Unusable(f"{len(labels)} labels for {len(steps)} steps")
    first = first_bad(labels, opts.policy)
    meta = record.get("meta") if isinstance(record.get("meta"), dict) else {}
    correct = meta.get("final_answer_correct")
    if not isinstance(correct, bool):
        correct = outcome(record).get("correct")
    return [{"id": record.get("id"), "generator": meta.get("generator"), "problem": _problem(record),
             "steps": steps, "final_answer_correct": correct, "label": -1 if first is None else first}]
