"""Step labels from a generative verifier: a judge model reasons about the steps, then labels them.

Three bundled templates, each with the parser that reads its answers:
- `processbench`: QwenLM/ProcessBench's critique template, word for word (`code/templates/
  critique_template.txt`), with the steps in `<paragraph_i>` tags as its `run_eval.py` builds them.
  The answer is the earliest erroneous paragraph's index in the last `\\boxed{}`, -1 for none.
  Steps before it are labelled good, it bad, later ones null (the judge says nothing of them).
- `thinkprm`: ThinkPRM's verification prompt (mukhal/ThinkPRM, `utils/helper.py`; steps numbered
  `Step 1:`...), with the answer started as "Let's verify step by step:" as ThinkPRM does. Each
  step's verification ends in `\\boxed{correct}` or `\\boxed{incorrect}`; a verifier may stop at
  the first incorrect step. "Is the solution correct? Yes/No" goes to `details.verdict`.
- `default` (`label_judge.jinja`): the trace delimited as data, a `Step i: correct|incorrect` line
  per step, then the earliest incorrect index in `\\boxed{}`. The boxed index is the conclusion;
  step lines label the steps after it, and lines that contradict it are listed in
  `details.conflicts`.

An answer that cannot be parsed gets one repair request (the conversation so far, then the parse
error and the format wanted); if that fails too, the entry keeps `error` = {reason, raw, repair}.
With `--samples k` each sample is parsed (and repaired) on its own and the first error is the
majority among those that parsed, ties going to the first seen (ProcessBench votes over 8 with
`Counter.most_common`); each label is the share of those samples that found the step good.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

from rubricate.errors import RubricateError
from rubricate.generators.step_labels import KIND, entry, failed, labels_from_first_error, make_provenance, steps_of
from rubricate.llm.types import Request, RequestFailed, failure
from rubricate.prompts import Template, variables
from rubricate.records import set_feedback

METHOD = "judge"
REQUIRES = ("problem",)
TEMPLATES = ("processbench", "thinkprm", "default")
THINKPRM_START = "Let's verify step by step:"

# ProcessBench's own pattern: the innermost-brace-free content of each \boxed{...}.
_BOXED = re.compile(r"\\boxed\{([^}]*)\}")
_TEXT = re.compile(r"\\text\{([^}]*)\}")
_VERDICT = re.compile(r"Is the solution correct\?[\s*:]*(yes|no)\b", re.I)
_STEP_LINE = re.compile(r"^[\s>*#-]*step\s*(\d+)\s*\**\s*[:.)\-]\s*\**\s*(correct|incorrect)\b", re.I | re.M)


class ParseError(Exception):
    """The judge's answer does not say what the parser needs."""


@dataclass
class Judgement:
    first_error_step: int
    labels: list[float | None]
    extra: dict[str, Any] = field(default_factory=dict)


def _index(text: str, n: int) -> int:
    found = _BOXED.findall(text)
    if not found:
        raise ParseError("no \\boxed{} with a step index found")
    raw = found[-1].strip()
    try:
        k = int(raw)
    except ValueError:
        raise ParseError(f"the last \\boxed{{}} holds {raw!r}, not a step index") from None
    if not -1 <= k < n:
        raise ParseError(f"index {k} is out of range: the solution has {n} steps, indexed 0 to {n - 1} "
                         f"(-1 when none is wrong)")
    return k


def parse_processbench(text: str, n: int) -> Judgement:
    k = _index(text, n)
    return Judgement(k, labels_from_first_error(k, n))


def parse_thinkprm(text: str, n: int) -> Judgement:
    decisions = [d.strip().lower() for d in _BOXED.findall(_TEXT.sub(r"\1", text))]
    decisions = [d for d in decisions if d in ("correct", "incorrect")]
    if not decisions:
        raise ParseError("no step verdicts (\\boxed{correct} or \\boxed{incorrect}) found")
    if len(decisions) > n:
        raise ParseError(f"{len(decisions)} step verdicts for a solution of {n} steps")
    if len(decisions) < n and decisions[-1] != "incorrect":
        raise ParseError(f"only {len(decisions)} of {n} steps verified, and the last verified one is correct")
    labels: list[float | None] = [1.0 if d == "correct" else 0.0 for d in decisions]
    labels += [None] * (n - len(labels))
    first = next((i for i, d in enumerate(decisions) if d == "incorrect"), -1)
    verdicts = _VERDICT.findall(text)
    return Judgement(first, labels, {"verdict": verdicts[-1].lower() if verdicts else None})


def parse_default(text: str, n: int) -> Judgement:
    k = _index(text, n)
    lines: dict[int, str] = {}
    for m in _STEP_LINE.finditer(text):
        if int(m.group(1)) < n:
            lines[int(m.group(1))] = m.group(2).lower()
    labels = labels_from_first_error(k, n)
    if k >= 0:
        for i in range(k + 1, n):
            if i in lines:
                labels[i] = 1.0 if lines[i] == "correct" else 0.0
    before = range(n) if k < 0 else range(k)
    conflicts = [i for i in before if lines.get(i) == "incorrect"] + ([k] if lines.get(k) == "correct" else [])
    return Judgement(k, labels, {"step_verdicts": [lines.get(i) for i in range(n)], "conflicts": conflicts})


@dataclass(frozen=True)
class Parser:
    parse: Callable[[str, int], Judgement]
    wanted: str  # the format, as a repair request asks for it
    prefill: str | None = None


PARSERS: dict[str, Parser] = {
    "processbench": Parser(parse_processbench, "the index of the paragraph where the earliest error occurs "
                                               "in \\boxed{}, or \\boxed{-1} if there is none"),
    "thinkprm": Parser(parse_thinkprm, "one line per step, `Step i: \\boxed{correct}` or `Step i: \\boxed{incorrect}` "
                                       "(you may stop after the first incorrect step), then "
                                       "`Is the solution correct? Yes` or `Is the solution correct? No`",
                       prefill=THINKPRM_START),
    "default": Parser(parse_default, "a line `Step i: correct` or `Step i: incorrect` for each step, then the "
                                     "index of the earliest incorrect step in \\boxed{}, or \\boxed{-1} if "
                                     "every step is correct"),
}


def repair_message(reason: str, parser: Parser) -> str:
    return (f"Your answer could not be read: {reason}. Please reply again with only the conclusion, "
            f"in this format: {parser.wanted}.")


def template_variables(record: dict, steps: list[str]) -> dict[str, Any]:
    """What judge templates see besides the record's fields: `steps`, `tagged_response` (ProcessBench's
    `<paragraph_i>` blocks) and `numbered_steps` (ThinkPRM's `Step 1: ...` lines)."""
    tagged = "".join(f"<paragraph_{i}>\n{step}\n</paragraph_{i}>\n\n" for i, step in enumerate(steps)).strip()
    # ThinkPRM drops step numbers a solution already carries before numbering its steps.
    numbered = "\n".join(f"Step {i + 1}: " + re.sub(r"Step \d+:", "", step).strip() for i, step in enumerate(steps))
    return {**variables(record), "steps": steps, "tagged_response": tagged, "numbered_steps": numbered}


def vote(judgements: list[Judgement], n: int) -> tuple[int, list[float | None], float]:
    """(majority first error, share of samples that found each step good, agreement)."""
    counts = Counter(j.first_error_step for j in judgements)
    first, top = counts.most_common(1)[0]
    labels: list[float | None] = []
    for i in range(n):
        seen = [j.labels[i] for j in judgements if j.labels[i] is not None]
        labels.append(sum(seen) / len(seen) if seen else None)
    return first, labels, top / len(judgements)


async def _read(text: str, sample: int, n: int, llm: Any, parser: Parser, prompt: str,
                params: dict[str, Any]) -> tuple[Judgement | None, dict[str, Any]]:
    """Parse one sample, with one repair request when it does not parse."""
    note: dict[str, Any] = {"sample": sample, "text": text}
    try:
        return parser.parse(text, n), note
    except ParseError as exc:
        note["reason"] = str(exc)
    repair = Request(messages=({"role": "user", "content": prompt}, {"role": "assistant", "content": text},
                               {"role": "user", "content": repair_message(note["reason"], parser)}),
                     sample=sample, **params)
    try:
        answer = (await llm.complete(repair)).text
    except RequestFailed as exc:
        note["repair_error"] = exc.reason
        return None, note
    note["repair"] = answer
    try:
        return parser.parse(answer, n), note
    except ParseError as exc:
        note["repair_reason"] = str(exc)
        return None, note


async def label_record(record: dict, llm: Any, *, template: Template, parse: str = "processbench",
                       samples: int = 1, params: dict[str, Any] | None = None, into: str = KIND,
                       strategy: str = "auto") -> dict:
    """Ask the judge (k samples), parse and vote, and set `feedback.<into>`. Never drops a record:
    what fails leaves `error` in the entry."""
    params = dict(params or {})
    parser = PARSERS[parse]
    prov = make_provenance(METHOD, llm, template=template, params={"parse": parse, "samples": samples, **params})
    steps = steps_of(record, strategy)
    n = len(steps)
    if not steps:
        return set_feedback(record, into, failed(METHOD, 0, "no steps to label", prov))
    try:
        prompt = template.render(**template_variables(record, steps))
        request = Request(messages=({"role": "user", "content": prompt},), prefill=parser.prefill, n=samples,
                          **params)
        completion = await llm.complete(request)
        texts = [(parser.prefill or "") + t for t in completion.texts]
        read = await asyncio.gather(*(_read(t, i, n, llm, parser, prompt, params) for i, t in enumerate(texts)))
    except (RequestFailed, RubricateError) as exc:
        error = failure(exc)
        return set_feedback(record, into, failed(METHOD, n, error["reason"], prov, attempts=error["attempts"]))
    judgements = [j for j, _ in read if j is not None]
    notes = [note for _, note in read]
    details: dict[str, Any] = {
        "template": parse, "samples": samples, "texts": [note["text"] for note in notes],
        "votes": [j.first_error_step if j is not None else None for j, _ in read],
        "repairs": [{k: v for k, v in note.items() if k != "text"} for note in notes if "reason" in note],
    }
    if not judgements:
        note = notes[0]
        if "repair_error" in note:
            reason = f"{note['reason']}; the repair request failed: {note['repair_error']}"
        else:
            reason = f"{note['repair_reason']} (after one repair; first answer: {note['reason']})"
        return set_feedback(record, into, failed(METHOD, n, f"unreadable judge answer: {reason}", prov,
                                                 details=details, raw=note["text"], repair=note.get("repair"),
                                                 attempts=2))
    if len(judgements) == 1:
        first, labels, agreement = judgements[0].first_error_step, judgements[0].labels, 1.0
    else:
        first, labels, agreement = vote(judgements, n)
    details["agreement"] = round(agreement, 6)
    for key in ("verdict", "step_verdicts", "conflicts"):
        values = [j.extra[key] for j in judgements if key in j.extra]
        if values:
            details[key] = values[0] if len(judgements) == 1 else values
    return set_feedback(record, into, entry(METHOD, labels, first, details, prov))
