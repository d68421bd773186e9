"""Presets: what a mapping cannot say about the public formats (GSM8K's answer after `#### `, MATH's
boxed answer, ProcessBench's given steps) and the importers of labelled public data (PRM800K,
Math-Shepherd). The dict at the end is the registry: a preset is a mapping plus a finishing function.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from rubricate.errors import InputError

_CALCULATOR = re.compile(r"<<[^<>]*>>")


def _gsm8k(record: dict) -> None:
    reference = record.get("reference") or {}
    solution = reference.get("solution")
    if isinstance(solution, str) and "####" in solution:
        body, _, answer = solution.rpartition("####")
        # verl's GSM8K preprocessing drops thousands separators from the answer the same way.
        reference.setdefault("answer", answer.strip().replace(",", ""))
        # Expert steps: the solution's lines, without the calculator annotations no model writes.
        reference.setdefault("steps", [_CALCULATOR.sub("", line).strip()
                                       for line in body.splitlines() if line.strip()])


def _math(record: dict) -> None:
    from rubricate.answers import last_boxed

    reference = record.get("reference") or {}
    solution = reference.get("solution")
    if reference.get("answer") in (None, "") and isinstance(solution, str):
        boxed = last_boxed(solution)
        if boxed is not None:
            reference["answer"] = boxed


def _processbench(record: dict) -> None:
    steps = record.get("steps")
    if record.get("response") is None and isinstance(steps, list) and all(isinstance(s, str) for s in steps):
        # The trace as a model wrote it, and where each given step sits in it.
        spans, pos = [], 0
        for step in steps:
            spans.append([pos, pos + len(step)])
            pos += len(step) + 2
        record["response"] = "\n\n".join(steps)
        record["step_spans"] = spans


# --- importers of labelled public data (issue 7) --------------------------------------------------
# Their step labels go to `feedback.source_labels`, shaped like `feedback.step_labels` (labels in
# [0, 1] or null, `first_error_step`, `details`, `provenance`), so `rubricate export` reads imported and
# generated labels alike. The input's own fields that the mapping did not use stay in `meta`.

SOURCE_LABELS = "source_labels"
MATH_SHEPHERD_TAG = "ки"


def _source_labels(method: str, labels: list, first_error: int, details: dict, params: dict) -> dict:
    from rubricate.records import provenance

    return {"method": method, "labels": labels, "first_error_step": first_error, "details": details,
            "provenance": provenance("import", params={"preset": method, **params})}


def _set_steps(record: dict, steps: list[str], sep: str) -> None:
    spans, pos = [], 0
    for step in steps:
        spans.append([pos, pos + len(step)])
        pos += len(step) + len(sep)
    record["steps"] = steps
    record["response"] = sep.join(steps)
    record["step_spans"] = spans


def _prm800k(neutral: float) -> Callable[[dict], None]:
    """PRM800K's label files (openai/prm800k, README "Data"): one line per labelled solution.

    The trace is the trajectory the README reconstructs (each step's chosen completion, else the
    labeler's `human_completion`). A step where nothing was chosen ends the labelling: with
    `finish_reason: found_error` the first completion rated -1 there is the error, kept as the last
    labelled step. In phase 2 the model's full solution is `question.pre_generated_steps`; its steps
    after the error were never labelled ("we stop labeling a solution after the first error is
    found") and are kept unlabelled (null), so the trace stays the one the model wrote.
    Labels: rating 1 -> 1.0 and -1 -> 0.0; neutral 0 -> `neutral` (0.0 in `prm800k`, as TRL's converter
    maps `rating == 1` to True; 1.0 in `prm800k-neutral-good`). Raw ratings go to `details.ratings`.
    """
    def finish(record: dict) -> None:
        meta = record.get("meta") or {}
        label = meta.get("label")
        if not isinstance(label, dict) or not isinstance(label.get("steps"), list):
            return  # not a PRM800K line: schema validation names what is missing
        steps: list[str] = []
        ratings: list = []
        for step in label["steps"]:
            completions = step.get("completions") or []
            chosen, human = step.get("chosen_completion"), step.get("human_completion")
            if chosen is not None and 0 <= chosen < len(completions):
                steps.append(completions[chosen]["text"])
                ratings.append(completions[chosen].get("rating"))
            elif human is not None:
                steps.append(human["text"] if isinstance(human, dict) else str(human))
                ratings.append(1)  # the labeler's own step is a good one (TRL's converter: True)
            else:
                wrong = next((c for c in completions if c.get("rating") == -1), None)
                if wrong is not None:
                    steps.append(wrong["text"])
                    ratings.append(-1)
                break
        question = meta.get("question") if isinstance(meta.get("question"), dict) else {}
        generated = question.get("pre_generated_steps")
        if (label.get("finish_reason") == "found_error" and isinstance(generated, list)
                and len(generated) > len(steps) and generated[:len(steps)] == steps):
            ratings += [None] * (len(generated) - len(steps))
            steps = list(generated)
        if not steps:
            return
        _set_steps(record, [str(s) for s in steps], "\n")
        values = {1: 1.0, 0: neutral, -1: 0.0}
        labels = [values.get(r) if isinstance(r, int) else None for r in ratings]
        first = next((i for i, r in enumerate(ratings) if r == -1), -1)
        details = {"ratings": ratings, "finish_reason": label.get("finish_reason"),
                   "neutral": "good" if neutral == 1.0 else "bad"}
        from rubricate.records import set_feedback

        set_feedback(record, SOURCE_LABELS, _source_labels(
            "prm800k", labels, first, details, {"neutral": details["neutral"]}))
    return finish


def _math_shepherd(record: dict) -> None:
    """Math-Shepherd (peiyi9979/Math-Shepherd): `input` is the problem, then "Step i: ..." steps each
    followed by the tag "ки"; `label` is the same text with each tag replaced by "+" or "-".

    Split as TRL's examples/datasets/math_shepherd.py does: the label at each tag position, the text
    between tags as the steps (stripped, "Step i:" kept), the problem before "Step 1:" (else
    "step 1:", else up to the first "?"). `task` (GSM8K or MATH) stays in meta.
    """
    meta = record.get("meta") or {}
    text, marked = meta.get("input"), meta.get("label")
    if not isinstance(text, str) or not isinstance(marked, str):
        return
    flat = text.replace(MATH_SHEPHERD_TAG, "\x00")  # one character per tag, as in `label`
    tags = [i for i, ch in enumerate(flat) if ch == "\x00"]
    if len(marked) != len(flat) or any(marked[i] not in "+-" for i in tags):
        raise InputError("field meta.label: does not mark each 'ки' of `input` with + or -", field="label")
    pieces = [flat[a:b] for a, b in zip([0] + [t + 1 for t in tags], tags)]
    if not pieces:
        raise InputError("field input: no 'ки' step tags", field="input")
    head, rest = pieces[0], [p.strip() for p in pieces[1:]]
    for marker in ("Step 1:", "step 1:"):
        if marker in head:
            problem, first = head.split(marker, 1)
            first = marker + first
            break
    else:
        if "?" not in head:
            raise InputError("field input: cannot find where the problem ends ('Step 1:' or '?')", field="input")
        problem, first = head.split("?", 1)
        problem += "?"
    steps = [first.strip()] + rest
    labels = [1.0 if marked[i] == "+" else 0.0 for i in tags]
    record["problem"] = problem.strip()
    meta.pop("input")
    meta.pop("label")
    _set_steps(record, steps, "\n")
    first_error = next((i for i, v in enumerate(labels) if v == 0.0), -1)
    from rubricate.records import set_feedback

    set_feedback(record, SOURCE_LABELS, _source_labels("math-shepherd", labels, first_error, {}, {}))


@dataclass(frozen=True)
class Preset:
    mapping: dict[str, str]
    finish: Callable[[dict], None] | None = None
    help: str = ""


PRESETS: dict[str, Preset] = {
    "gsm8k": Preset({"problem": "question", "reference.solution": "answer"}, _gsm8k,
                    "GSM8K: question/answer; the answer after '#### ', solution lines as expert steps"),
    "math": Preset({"id": "unique_id", "problem": "problem", "reference.solution": "solution",
                    "reference.answer": "answer"}, _math,
                   "MATH / MATH-500: the boxed answer of `solution` when `answer` is absent"),
    "processbench": Preset({"id": "id", "problem": "problem", "steps": "steps"}, _processbench,
                           "ProcessBench: given `steps` (joined into `response`); `label` and "
                           "`final_answer_correct` kept in meta"),
    # importers of labelled public data (issue 7)
    "prm800k": Preset({"problem": "question.problem", "reference.solution": "question.ground_truth_solution",
                       "reference.answer": "question.ground_truth_answer"}, _prm800k(0.0),
                      "PRM800K label files: the chosen trajectory as steps, ratings as feedback.source_labels "
                      "(1 good; 0 and -1 bad, as TRL's converter)"),
    "prm800k-neutral-good": Preset({"problem": "question.problem",
                                    "reference.solution": "question.ground_truth_solution",
                                    "reference.answer": "question.ground_truth_answer"}, _prm800k(1.0),
                                   "PRM800K with neutral (0) ratings counted as good steps"),
    "math-shepherd": Preset({}, _math_shepherd,
                            "Math-Shepherd: `input` split at its 'ки' tags into problem and steps, `label`'s "
                            "+/- as feedback.source_labels"),
}
