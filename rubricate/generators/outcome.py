"""The `verify` generator: the trace's final answer, checked against the reference answer.

No model is involved, so it is a plain function of one record. What it cannot decide it leaves as
`correct: null` with a reason, and the record goes on down the pipeline.
"""

from __future__ import annotations

from rubricate.answers import answer_text, compare, extract_answer
from rubricate.records import provenance, response_text, set_feedback

KIND = "outcome"
REQUIRES = ("problem",)

_REWARD = {True: 1.0, False: 0.0, None: None}


def verify_record(record: dict, *, timeout: float = 3.0, fallback: bool = True) -> dict:
    """Set `feedback.outcome` on `record` (in place) and return it.

    `fallback=False` refuses to take the last number of a response as its answer when no answer
    marker (boxed, "the answer is", ...) is found: safer as a training reward, which a model can
    otherwise earn by ending on the right number by chance.
    """
    entry = {"answer": None, "correct": None, "reward": None, "method": None, "comparison": None,
             "reference": None, "reason": None,
             "provenance": provenance(KIND, params={"timeout": timeout, "fallback": fallback})}
    reference = record.get("reference")
    raw_reference = reference.get("answer") if isinstance(reference, dict) else None
    entry["reference"] = answer_text(raw_reference)

    text = response_text(record)
    extracted = extract_answer(text, fallback=fallback) if text else None
    if extracted is not None:
        entry["answer"], entry["method"] = extracted.text, extracted.method

    reasons = []
    if not text or not text.strip():
        reasons.append("no response")
    elif extracted is None:
        reasons.append("no final answer found" + ("" if fallback else " (last-number fallback off)"))
    if entry["reference"] is None or not entry["reference"].strip():
        reasons.append("no reference answer")
    if not reasons:
        result = compare(extracted.text, entry["reference"], timeout=timeout)
        entry["correct"], entry["comparison"] = result.correct, result.method
        if result.reason:
            reasons.append(result.reason)
    if extracted is not None and extracted.method == "last_number":
        reasons.append("no answer marker found; took the last number in the response")

    entry["reward"] = _REWARD[entry["correct"]]
    entry["reason"] = "; ".join(reasons) or None
    return set_feedback(record, KIND, entry)
