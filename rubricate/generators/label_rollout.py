"""Step labels by Monte-Carlo rollouts (Math-Shepherd, arXiv 2312.08935; OmegaPRM, arXiv 2406.06592).

From the prefix that ends at step k, a policy model writes N continuations (a raw-completion
continuation of the problem prompt and the trace so far); each continuation's final answer is
checked against `reference.answer`. MC(k) = correct / N estimates how often the trace can still be
finished correctly from step k: the soft label is MC(k), the hard label MC(k) > 0 (Math-Shepherd's
soft and hard estimates). The first error is the first step whose MC is 0.

- `linear` estimates every prefix, all at once.
- `binary` (OmegaPRM) looks for the first step whose MC is 0 by bisection, which assumes what
  OmegaPRM assumes: once a prefix can no longer be finished correctly, no longer prefix can. It
  evaluates O(log n) prefixes; steps before the one it finds are labelled good (1), that step bad
  (0), later steps null; the MC values it did estimate are in `details.mc`.

A complete trace has nothing left to continue, so the last step's MC is the verified correctness of
the trace's own final answer (`feedback.outcome` when present, else checked here), at no cost; only
when that cannot be decided (no answer found) is the last step rolled out like the others. Under
the bisection's assumption a trace whose answer is right has no bad step, so `binary` spends nothing
on it, as OmegaPRM searches only rollouts that ended wrong.

The N continuations of one prefix are one request (`n` = N), and `linear` sends every prefix of a
trace together, so servers with prefix caching (vLLM, SGLang) read the shared text once.
`details.continuations` counts the continuations spent on the record.
"""

from __future__ import annotations

import asyncio
from typing import Any, Generator

from rubricate.answers import answer_text, compare, extract_answer
from rubricate.errors import RubricateError
from rubricate.generators.step_labels import (KIND, entry, failed, labels_from_first_error, make_provenance,
                                              prefix_text, separator_after, steps_of)
from rubricate.llm.types import Request, RequestFailed, failure
from rubricate.prompts import Template, variables
from rubricate.records import response_text, set_feedback

METHOD = "rollout"
REQUIRES = ("problem",)
SEARCHES = ("linear", "binary")
# Base models continuing "Question: ... Answer: ..." go on to invent the next question.
STOP = ("\nQuestion:",)


# --- the searches: pure functions of the MC values, so they can be checked on any pattern ---------

def first_zero(mc: list[float | None]) -> int:
    """The first step whose MC is 0, or -1."""
    return next((k for k, v in enumerate(mc) if v == 0), -1)


def bisect_first_zero(n: int, known: dict[int, float] | None = None) -> Generator[int, float, int]:
    """OmegaPRM's binary search as a generator: it yields each step whose MC it needs, is sent that
    MC, and returns the first step with MC 0 (-1 when none), assuming MC is positive up to some step
    and 0 from there on. `known` MC values are used without asking: a known positive step moves the
    search after it, a known zero bounds it from above.

    On any pattern it returns a step k with MC(k) = 0 whose predecessor (when k > 0) has MC > 0, or -1
    when the last step has MC > 0; it asks for at most ceil(log2(n + 1)) values.
    """
    known = dict(known or {})
    lo, hi = 0, n  # the answer lies in [lo, hi]; hi = n stands for "none"
    positives = [k for k, v in known.items() if v > 0]
    zeros = [k for k, v in known.items() if v == 0]
    if positives:
        lo = max(positives) + 1
    if zeros:
        hi = min([z for z in zeros if z >= lo], default=hi)
    while lo < hi:
        mid = (lo + hi) // 2
        value = known[mid] if mid in known else (yield mid)
        known[mid] = value
        if value == 0:
            hi = mid
        else:
            lo = mid + 1
    return lo if lo < n else -1


# --- estimating MC(k) with a policy model ---------------------------------------------------------

class Estimator:
    """MC(k) for one record: N continuations of the prefix ending at step k, each final answer
    verified. Counts what it spends."""

    def __init__(self, record: dict, llm: Any, head: str, reference: str, rollouts: int,
                 params: dict[str, Any], timeout: float):
        self.record, self.llm, self.head, self.reference = record, llm, head, reference
        self.rollouts, self.params, self.timeout = rollouts, params, timeout
        self.mc: dict[int, float] = {}
        self.correct: dict[int, int] = {}
        self.continuations = 0
        self.answers: dict[int, list[str | None]] = {}

    def prompt(self, k: int) -> str:
        return self.head + "\n" + prefix_text(self.record, k) + separator_after(self.record, k)

    async def __call__(self, k: int) -> float:
        request = Request(prompt=self.prompt(k), n=self.rollouts, stop=STOP, **self.params)
        completion = await self.llm.complete(request)
        self.continuations += len(completion.texts)
        written = prefix_text(self.record, k) + separator_after(self.record, k)
        verdicts, answers = [], []
        for text in completion.texts:
            found = extract_answer(written + text)
            answers.append(found.text if found else None)
            right = found is not None and compare(found.text, self.reference, timeout=self.timeout).correct is True
            verdicts.append(right)
        self.correct[k] = sum(verdicts)
        self.answers[k] = answers
        self.mc[k] = sum(verdicts) / len(verdicts) if verdicts else 0.0
        return self.mc[k]


def trace_outcome(record: dict, reference: str, timeout: float) -> bool | None:
    """Whether the trace's own final answer is right: `feedback.outcome` when present, else checked."""
    outcome = (record.get("feedback") or {}).get("outcome")
    if isinstance(outcome, dict) and outcome.get("correct") in (True, False):
        return outcome["correct"]
    text = response_text(record)
    found = extract_answer(text) if text else None
    return None if found is None else compare(found.text, reference, timeout=timeout).correct


async def label_record(record: dict, llm: Any, *, template: Template, rollouts: int = 8, search: str = "linear",
                       hard: bool = False, params: dict[str, Any] | None = None, into: str = KIND,
                       strategy: str = "auto", timeout: float = 3.0) -> dict:
    """Estimate MC along the trace (linear or binary) and set `feedback.<into>`."""
    params = dict(params or {})
    prov = make_provenance(METHOD, llm, template=template,
                           params={"rollouts": rollouts, "search": search, "hard": hard or search == "binary",
                                   **params})
    steps = steps_of(record, strategy)
    n = len(steps)
    if not steps:
        return set_feedback(record, into, failed(METHOD, 0, "no steps to label", prov))
    reference = answer_text((record.get("reference") or {}).get("answer"))
    if reference is None or not reference.strip():
        return set_feedback(record, into, failed(METHOD, n, "no reference answer to verify continuations against",
                                                 prov))
    estimate = Estimator(record, llm, "", reference, rollouts, params, timeout)
    known: dict[int, float] = {}
    last = trace_outcome(record, reference, timeout)
    if last is not None:
        known[n - 1] = 1.0 if last else 0.0
    try:
        estimate.head = template.render(**variables(record))
        if search == "linear":
            todo = [k for k in range(n) if k not in known]
            values = await asyncio.gather(*(estimate(k) for k in todo))
            known.update(zip(todo, values))
            mc: list[float | None] = [known[k] for k in range(n)]
            first = first_zero(mc)
            labels = [(1.0 if v > 0 else 0.0) if hard else v for v in mc]
        else:
            search_steps = bisect_first_zero(n, known)
            try:
                k = next(search_steps)
                while True:
                    k = search_steps.send(await estimate(k))
            except StopIteration as done:
                first = done.value
            labels = labels_from_first_error(first, n)
    except (RequestFailed, RubricateError) as exc:
        error = failure(exc)
        return set_feedback(record, into, failed(METHOD, n, error["reason"], prov, attempts=error["attempts"],
                                                 details=_details(estimate, known, n, search, last)))
    return set_feedback(record, into, entry(METHOD, labels, first, _details(estimate, known, n, search, last), prov))


def _details(estimate: Estimator, known: dict[int, float], n: int, search: str, last: bool | None) -> dict[str, Any]:
    mc = [known.get(k, estimate.mc.get(k)) for k in range(n)]
    return {
        "search": search,
        "rollouts": estimate.rollouts,
        "mc": [None if v is None else round(v, 6) for v in mc],
        "correct": [estimate.correct.get(k) for k in range(n)],
        "answers": [estimate.answers.get(k) for k in range(n)],
        "last_step": "rollout" if last is None else "outcome",
        "prefixes_evaluated": sorted(estimate.mc),
        "continuations": estimate.continuations,
    }
