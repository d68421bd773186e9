"""`critique`: feedback that says why a response failed and what should change.

Three types, as Critique-GRPO (Zhang et al., arXiv 2506.03106) trains with them:
- `indicative`: "The generated solution is correct." / "... incorrect." (its code calls it `simple`);
- `ground-truth`: the same with ", the ground truth is X." (`simple_gt`, its default);
- `cot`: a judge model writes a step-by-step critique.
The first two need no model: they restate `feedback.outcome`, verified here when the record has none.

The judge's answer is read by this contract, which the bundled templates ask for and a user's
`--template` may too: the last line starting "Conclusion:" carries the verdict ("correct"/"right" or
"incorrect"/"wrong", an "[END]" after it optional). A template whose text contains "First error
step:" also gets that line read (a step index as numbered in the prompt, -1 for none), and one that
contains "Directive:" gets the directive read; both are required when the verdict is incorrect.
Only the judge's own answer is parsed, never the prompt, and the trace sits in the prompt between
delimiters as data. An answer that cannot be read gets one repair request quoting why; after that
the entry keeps the raw answer and the reason in `error`.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from rubricate.answers import answer_text
from rubricate.errors import RubricateError, UsageError
from rubricate.generators.outcome import verify_record
from rubricate.generators.steps import segment_record
from rubricate.llm.types import Request, RequestFailed, failure
from rubricate import prompts
from rubricate.prompts import Template, render_chat, variables
from rubricate.records import model_provenance, provenance, response_text, set_feedback

KIND = "critique"
REQUIRES = ("problem",)
TYPES = ("indicative", "ground-truth", "cot")
ONLY = ("incorrect", "correct", "all")

# Critique-GRPO's released code, zhangxy-2019/critique-GRPO @ e8f03a2,
# verl/verl/critique_grpo/critique_prompts.py, generate_critique(): critique_type "simple" and
# "simple_gt" ("simple_gt" is the default in critique_vllm_rollout_spmd.py). Kept byte for byte;
# "correct" there means math-verify scored the response above 0.
INDICATIVE = {True: "The generated solution is correct.", False: "The generated solution is incorrect."}
GROUND_TRUTH = {True: "The generated solution is correct, the ground truth is ",
                False: "The generated solution is incorrect, the ground truth is "}  # + answer + "."

DIRECTIVE_FIELDS = ("first_error_step", "directive")
_VERDICTS = {"correct": "correct", "right": "correct", "incorrect": "incorrect", "wrong": "incorrect"}
_LEAD = r"^[\s>*#_`\-]*"  # markdown a judge may put before a field name
# "Conclusion: ..." or a "## Conclusion" heading alone (its verdict on the next line); not prose
# that merely starts with the word.
_CONCLUSION = re.compile(_LEAD + r"conclusion[\s*_`]*(?:[:：](.*))?$", re.I)
_VERDICT = re.compile(r"^[\s*_`'\"\[(:：]*(?:the\s+(?:student's\s+)?(?:solution|answer)\s+is\s+)?"
                      r"(incorrect|correct|wrong|right)\b[\s*_`'\".!\])]*(?:\[END\])?[\s*_`'\".!]*$", re.I)
_FIRST_ERROR = re.compile(_LEAD + r"first\s+error(?:\s+step)?[\s*_`]*[:：](.*)$", re.I)
_DIRECTIVE = re.compile(_LEAD + r"directive[\s*_`]*[:：](.*)$", re.I)
_NONE = re.compile(r"^(?:-1|none|null|n/?a|no errors?|-|—)?[.]?$", re.I)
_STEP = re.compile(r"^(?:step\s*)?(-?\d+)\b", re.I)
_TAGS = ("solution", "step", "problem", "reference")  # the bundled templates' data delimiters


class ParseError(ValueError):
    """The judge's answer does not follow the contract; the message says how, for the repair."""


@dataclass(frozen=True)
class Reading:
    verdict: str
    first_error_step: int | None
    directive: str | None


def quote(text: str) -> str:
    return prompts.quote(text, _TAGS)


def asked(template: Template) -> list[str]:
    """The directive fields a template asks the judge for (see the module docstring)."""
    return [f for f, marker in zip(DIRECTIVE_FIELDS, ("First error step:", "Directive:")) if marker in template.text]


# -- the judge's answer ----------------------------------------------------------------------------

def _last(pattern: re.Pattern, lines: list[str]) -> tuple[int, str] | None:
    for i in range(len(lines) - 1, -1, -1):
        m = pattern.match(lines[i])
        if m:
            return i, m.group(1)
    return None


def parse(text: str, n_steps: int, fields: list[str] | tuple[str, ...] = DIRECTIVE_FIELDS) -> Reading:
    """The verdict, first error step and directive of a judge's answer; ParseError says what is wrong."""
    lines = text.splitlines()
    found = _last(_CONCLUSION, lines)
    if found is None:
        raise ParseError("there is no line starting with 'Conclusion:'; end with 'Conclusion: correct [END]' "
                         "or 'Conclusion: incorrect [END]'")
    at, rest = found
    if not (rest or "").strip(" \t*_`:："):  # "## Conclusion" as a heading: the verdict is on the next line
        rest = next((line for line in lines[at + 1:] if line.strip()), "")
    m = _VERDICT.match(rest)
    if m is None:
        raise ParseError(f"the conclusion line {lines[at].strip()!r} names no verdict; write exactly "
                         "'Conclusion: correct [END]' or 'Conclusion: incorrect [END]'")
    verdict = _VERDICTS[m.group(1).lower()]
    step = directive = None
    if "first_error_step" in fields:
        step = _first_error(_last(_FIRST_ERROR, lines), n_steps, verdict)
    if "directive" in fields:
        directive = _directive(lines, verdict)
    return Reading(verdict, step, directive)


def _first_error(found: tuple[int, str] | None, n_steps: int, verdict: str) -> int | None:
    value = found[1].strip(" \t*_`'\"") if found is not None else ""
    if not value:
        if verdict == "incorrect":
            raise ParseError("the verdict is incorrect but there is no 'First error step:' line; give the index "
                             "of the earliest wrong step as numbered in the solution")
        return None
    if _NONE.match(value):
        return None
    m = _STEP.match(value)
    if m is None:
        raise ParseError(f"'First error step: {value}' is not a step index; write a number as the steps are "
                         "numbered, or -1 for none")
    index = int(m.group(1))
    if index == -1:
        return None
    if not 0 <= index < n_steps:
        raise ParseError(f"first error step {index} is out of range: the solution has {n_steps} steps, "
                         f"numbered 0 to {n_steps - 1} (or -1 for none)")
    return index


def _directive(lines: list[str], verdict: str) -> str | None:
    found = _last(_DIRECTIVE, lines)
    text = None
    if found is not None:
        at, first = found
        body = [first]
        for line in lines[at + 1:]:  # a directive may run over several lines, up to the next field
            if _CONCLUSION.match(line) or _FIRST_ERROR.match(line):
                break
            body.append(line)
        text = "\n".join(body).strip().strip("*_`").strip() or None
        if text is not None and _NONE.match(text):
            text = None
    if text is None and verdict == "incorrect":
        raise ParseError("the verdict is incorrect but there is no 'Directive:' line saying what to change")
    return text


# -- records ----------------------------------------------------------------------------------------

def ensure_outcome(record: dict) -> dict:
    """`feedback.outcome`, verified now (with verify's defaults) when the record has none."""
    feedback = record.get("feedback")
    outcome = feedback.get("outcome") if isinstance(feedback, dict) else None
    if not isinstance(outcome, dict):
        outcome = verify_record(record)["feedback"]["outcome"]
    return outcome


def selected(outcome: dict, only: str) -> bool:
    if only == "all":
        return True
    return outcome.get("correct") is (only == "correct")


def _entry(kind: str, fields: list[str]) -> dict[str, Any]:
    return {"type": kind, "text": None, "verdict": None, "first_error_step": None, "directive": None,
            "asked": list(fields)}


def simple_record(record: dict, kind: str, *, only: str = "all") -> dict:
    """An `indicative` or `ground-truth` critique from the outcome. Records outside `only` pass through."""
    if kind not in ("indicative", "ground-truth"):
        raise UsageError(f"critique type {kind!r} needs a model")
    outcome = ensure_outcome(record)
    if not selected(outcome, only):
        return record
    entry = _entry(kind, [])
    correct = outcome.get("correct")
    if correct is None:
        entry["reason"] = "outcome undecided: " + (outcome.get("reason") or "no verdict")
    else:
        entry["verdict"] = "correct" if correct else "incorrect"
        entry["text"] = INDICATIVE[correct] if kind == "indicative" else (
            GROUND_TRUTH[correct] + str(outcome.get("reference")) + ".")
    entry["provenance"] = provenance(KIND, params={"type": kind, "only": only})
    return set_feedback(record, KIND, entry)




def template_values(record: dict, outcome: dict | None) -> dict[str, Any]:
    """What a critique template sees: every record field, plus the trace quoted for use as data and
    the reference pulled out (None when absent, so templates can test for it)."""
    reference = record.get("reference") if isinstance(record.get("reference"), dict) else {}
    text = response_text(record) or ""
    steps = [str(s) for s in record.get("steps") or []]
    solution = reference.get("solution")
    return {**variables(record), "response": text, "steps": steps, "quoted_response": quote(text),
            "quoted_steps": [quote(s) for s in steps], "outcome": outcome,
            "reference_answer": answer_text(reference.get("answer")),
            "reference_solution": solution if isinstance(solution, str) and solution.strip() else None}


def _model_provenance(llm: Any, template: Template, params: dict[str, Any]) -> dict:
    return model_provenance(KIND, llm, template=template, params=params)


async def cot_record(record: dict, llm: Any, *, template: Template, repair: Template, params: dict[str, Any],
                     samples: int = 1, only: str = "incorrect") -> dict:
    """A chain-of-thought critique by the judge `llm`. Records outside `only` pass through; every
    other one gets an entry, with `error` when no answer could be read."""
    outcome = ensure_outcome(record)
    if not selected(outcome, only):
        return record
    fields = asked(template)
    entry = _entry("cot", fields)
    prov = _model_provenance(llm, template, {**params, "type": "cot", "only": only, "samples": samples})
    if not (response_text(record) or "").strip():
        entry["reason"] = "no response to critique"
        entry["provenance"] = prov
        return set_feedback(record, KIND, entry)
    try:
        segment_record(record)  # first_error_step indexes `steps`, so the record must carry them
        system, prompt = render_chat(template, template_values(record, outcome))
        messages = ({"role": "user", "content": prompt},)
        completion = await llm.complete(Request(messages=messages, system=system, n=samples, **params))
        n_steps = len(record.get("steps") or [])
        readings = await asyncio.gather(*(
            _read(llm, raw, i, messages, system, params, repair, n_steps, fields)
            for i, raw in enumerate(completion.texts)))
    except (RequestFailed, RubricateError) as exc:
        entry["error"] = failure(exc)
    else:
        _combine(entry, readings, samples)
    entry["provenance"] = prov
    return set_feedback(record, KIND, entry)


async def _read(llm: Any, raw: str, index: int, messages: tuple, system: str | None, params: dict[str, Any],
                repair: Template, n_steps: int, fields: list[str]) -> dict[str, Any]:
    """One sample: parsed, or after one repair request parsed, or an error keeping the raw text."""
    try:
        return _reading(raw, parse(raw, n_steps, fields))
    except ParseError as exc:
        first = str(exc)
    ask = render_chat(repair, {"error": first, "asked": fields})[1]
    followup = messages + ({"role": "assistant", "content": raw}, {"role": "user", "content": ask})
    try:
        again = (await llm.complete(Request(messages=followup, system=system, sample=index, **params))).text
    except RequestFailed as exc:
        return {"error": {"reason": f"{first}; the repair request failed: {exc.reason}", "raw": raw,
                          "attempts": 1 + exc.attempts}}
    try:
        return {**_reading(again, parse(again, n_steps, fields)), "repaired": True}
    except ParseError as exc:
        return {"error": {"reason": f"{exc} (after one repair; first answer: {first})", "raw": again,
                          "attempts": 2}}


def _reading(text: str, reading: Reading) -> dict[str, Any]:
    return {"text": text.strip(), "verdict": reading.verdict, "first_error_step": reading.first_error_step,
            "directive": reading.directive}


def _combine(entry: dict[str, Any], readings: list[dict[str, Any]], samples: int) -> None:
    """The majority verdict (a tie goes to the verdict the earliest sample gave), with the text and
    directive fields of the first sample that gave it."""
    good = [r for r in readings if "error" not in r]
    if samples > 1:
        entry["samples"] = readings
    if not good:
        first = readings[0]["error"]
        entry["error"] = first if samples == 1 else {
            "reason": f"none of the {len(readings)} critiques could be read; the first: {first['reason']}",
            "raw": first["raw"], "attempts": sum(r["error"]["attempts"] for r in readings)}
        return
    votes = Counter(r["verdict"] for r in good)
    top = max(votes.values())
    verdict = next(r["verdict"] for r in good if votes[r["verdict"]] == top)
    best = next(r for r in good if r["verdict"] == verdict)
    entry.update({k: best[k] for k in ("text", "verdict", "first_error_step", "directive")})
    if samples == 1 and best.get("repaired"):
        entry["repaired"] = True
    if samples > 1:
        entry["agreement"] = round(top / len(good), 4)
