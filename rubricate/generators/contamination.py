"""`probe contamination`: has the model seen these problems? (Wu et al., arXiv 2507.10532)

The first `fraction` of each problem's words is sent as a raw prompt to continue (no chat template,
greedy: temperature 0), and the continuation is compared with the true rest of the problem:

- `exact_match`: the continuation's first words are the remainder's words, exactly (split on
  whitespace, case and punctuation kept; whatever the model writes after them does not count);
- `rouge_l`: ROUGE-L F1 (LCS-based, beta = 1) between the remainder and as many tokens of the
  continuation as the remainder has. Tokens are runs of letters, digits and underscores, and every
  other non-space character on its own (`\\frac{1}{2}` -> `\\ frac { 1 } { 2 }`), lowercased: in
  math text the symbols carry meaning, so they count.

Then the truncated problem is asked as a chat question, and its final answer (rubricate.answers)
compared with the reference: a model that reaches the reference answer from 60% of a problem has
likely seen all of it. For orientation, the paper finds Qwen2.5-Math-7B completes 54.6% of MATH-500
problems exactly from 60% prefixes, Llama-3.1-8B 3.8%.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from rubricate.answers import answer_text, compare, extract_answer
from rubricate.errors import RubricateError
from rubricate.llm.types import FatalError, Request, RequestFailed
from rubricate.prompts import Template
from rubricate.records import model_provenance, set_feedback

KIND = "contamination"
REQUIRES = ("problem",)

_WORD = re.compile(r"\S+")
_TOKEN = re.compile(r"\w+|[^\w\s]")


def split_problem(text: str, fraction: float) -> tuple[str, str, int, int] | None:
    """(prefix, remainder, words in the prefix, words in all) with the cut after a whole word:
    round(fraction * words) words (Python's round, half to even), at least one on each side.
    None for fewer than two words."""
    words = list(_WORD.finditer(text))
    if len(words) < 2:
        return None
    k = min(len(words) - 1, max(1, round(fraction * len(words))))
    cut = words[k - 1].end()
    return text[:cut], text[cut:], k, len(words)


def rouge_tokens(text: str) -> list[str]:
    return [t.lower() for t in _TOKEN.findall(text)]


def lcs_length(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence, in O(len(a) * len(b)) time and O(len(b)) memory."""
    if len(a) < len(b):
        a, b = b, a
    row = [0] * (len(b) + 1)
    for x in a:
        prev_diag = 0
        for j, y in enumerate(b, 1):
            keep = row[j]
            row[j] = prev_diag + 1 if x == y else max(row[j], row[j - 1])
            prev_diag = keep
    return row[-1]


def rouge_l(candidate: list[str], reference: list[str]) -> float:
    """ROUGE-L F1: P = LCS / len(candidate), R = LCS / len(reference), F = 2PR / (P + R)."""
    if not candidate or not reference:
        return 0.0
    lcs = lcs_length(candidate, reference)
    if lcs == 0:
        return 0.0
    p, r = lcs / len(candidate), lcs / len(reference)
    return 2 * p * r / (p + r)


def compare_continuation(completion: str, remainder: str) -> tuple[bool, float]:
    """(exact match, ROUGE-L F1) of a continuation against the true remainder (see the module doc)."""
    want = remainder.split()
    exact = completion.split()[:len(want)] == want
    reference = rouge_tokens(remainder)
    return exact, round(rouge_l(rouge_tokens(completion)[:len(reference)], reference), 6)


def completion_budget(remainder: str) -> int:
    """Tokens to let the model write: enough for the remainder in LaTeX-dense text (about 2
    characters a token), plus a margin."""
    return len(remainder) // 2 + 16


async def probe_record(record: dict, llm: Any, *, fraction: float, template: Template,
                       ask_answer: bool = True, completion_tokens: int | None = None,
                       answer_tokens: int = 1024, timeout: float = 3.0) -> dict:
    """Set feedback.contamination. Failed requests leave `error`; what did come back is kept."""
    params = {"fraction": fraction, "temperature": 0, "completion_tokens": completion_tokens,
              "answer": ask_answer, "answer_tokens": answer_tokens}
    prov = model_provenance(KIND, llm, template=template, params=params)
    entry: dict[str, Any] = {"fraction": fraction, "prefix_words": None, "words": None, "cut": None,
                             "completion": None, "exact_match": None, "rouge_l": None, "answer": None}
    split = split_problem(record["problem"], fraction)
    if split is None:
        entry["reason"] = "the problem has fewer than two words"
        entry["provenance"] = prov
        return set_feedback(record, KIND, entry)
    prefix, remainder, k, n = split
    entry.update(prefix_words=k, words=n, cut=len(prefix))
    reference = record.get("reference") if isinstance(record.get("reference"), dict) else {}
    gold = answer_text(reference.get("answer"))
    gold = gold if gold and gold.strip() else None

    continuation = Request(prompt=prefix, temperature=0.0,
                           max_tokens=completion_tokens or completion_budget(remainder))
    calls = [llm.complete(continuation)]
    if ask_answer and gold is not None:
        question = template.render(prefix=prefix, record=record)
        calls.append(llm.complete(Request(messages=({"role": "user", "content": question},), temperature=0.0,
                                          max_tokens=answer_tokens)))
    results = await asyncio.gather(*calls, return_exceptions=True)
    failures = []
    for result in results:
        if isinstance(result, FatalError):
            raise result  # no record can succeed: stop the run with the provider's message
        if isinstance(result, BaseException) and not isinstance(result, (RequestFailed, RubricateError)):
            raise result
    first = results[0]
    if isinstance(first, BaseException):
        failures.append(_failure("continuation", first))
    else:
        entry["completion"] = first.text
        entry["exact_match"], entry["rouge_l"] = compare_continuation(first.text, remainder)
    if ask_answer:
        entry["answer"] = _answer(results[1] if len(results) > 1 else None, gold, failures, timeout)
    if failures:
        entry["error"] = {"reason": "; ".join(f for f, _ in failures), "attempts": sum(a for _, a in failures)}
    entry["provenance"] = prov
    return set_feedback(record, KIND, entry)


def _failure(what: str, exc: BaseException) -> tuple[str, int]:
    if isinstance(exc, RequestFailed):
        return f"the {what} request failed: {exc.reason}", exc.attempts
    return f"the {what} request failed: {getattr(exc, 'message', exc)}", 0


def _answer(result: Any, gold: str | None, failures: list, timeout: float) -> dict[str, Any]:
    """Whether the answer to the truncated problem is the reference answer."""
    out: dict[str, Any] = {"answer": None, "correct": None, "reference": gold, "reason": None}
    if gold is None:
        out["reason"] = "no reference answer"
        return out
    if isinstance(result, BaseException):
        failures.append(_failure("answer", result))
        out["reason"] = "the request failed"
        return out
    extracted = extract_answer(result.text)
    if extracted is None:
        out["correct"], out["reason"] = False, "no final answer found"
        return out
    out["answer"] = extracted.text
    verdict = compare(extracted.text, gold, timeout=timeout)
    out["correct"], out["reason"] = verdict.correct, verdict.reason
    return out
