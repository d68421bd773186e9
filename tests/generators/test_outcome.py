"""The `verify` generator: feedback.outcome on hand-made records and on ProcessBench's real traces."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rubricate import schemas
from rubricate.generators import outcome
from rubricate.generators.outcome import verify_record

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def _data(name: str) -> Path:
    path = DATA / name
    if not path.exists():
        pytest.skip(f"reference data {path} is absent (it lives in the repo's sibling shared/data)")
    return path


def _record(response=None, answer="18", **extra) -> dict:
    record = {"id": "t1", "problem": "How much does she make?", "reference": {"answer": answer}, **extra}
    if response is not None:
        record["response"] = response
    return record


def _outcome(record: dict, **kwargs) -> dict:
    entry = verify_record(record, **kwargs)["feedback"]["outcome"]
    assert list(schemas.errors(entry, "outcome")) == []
    return entry


def test_module_declares_its_kind():
    assert outcome.KIND == "outcome"
    assert "problem" in outcome.REQUIRES


def test_correct_answer():
    entry = _outcome(_record("9 * 2 = 18, so the answer is $\\boxed{18}$."))
    assert entry["answer"] == "18"
    assert (entry["correct"], entry["reward"], entry["method"]) == (True, 1.0, "boxed")
    assert entry["reference"] == "18"
    assert entry["reason"] is None
    assert entry["provenance"]["generator"] == "outcome"
    assert entry["provenance"]["params"] == {"timeout": 3.0, "fallback": True}


def test_wrong_answer():
    entry = _outcome(_record("The answer is 17."))
    assert (entry["correct"], entry["reward"], entry["method"]) == (False, 0.0, "answer_is")
    assert entry["comparison"] in ("math_verify", "exact")


def test_numeric_reference():
    entry = _outcome(_record("#### 0.5", answer=0.5))
    assert entry["correct"] is True
    assert entry["reference"] == "0.5"


def test_steps_stand_in_for_a_response():
    entry = _outcome(_record(steps=["9 * 2 = 18.", "So she makes \\boxed{18} dollars."]))
    assert entry["correct"] is True


def test_other_feedback_is_left_alone():
    record = _record("The answer is 18.", feedback={"critique": {"text": "fine"}})
    verify_record(record)
    assert record["feedback"]["critique"] == {"text": "fine"}
    assert record["feedback"]["outcome"]["correct"] is True


def test_no_reference():
    record = {"id": "t1", "problem": "p", "response": "The answer is 18."}
    entry = _outcome(record)
    assert entry["correct"] is None and entry["reward"] is None
    assert entry["answer"] == "18"  # still worth recording
    assert "no reference" in entry["reason"]


@pytest.mark.parametrize("reference", [None, {"answer": None}, {"answer": True}, {"answer": ["18"]}, "18"])
def test_unusable_reference(reference):
    entry = _outcome({"id": "t1", "problem": "p", "response": "The answer is 18.", "reference": reference})
    assert entry["correct"] is None
    assert "no reference" in entry["reason"]


def test_no_response():
    entry = _outcome(_record())
    assert entry["correct"] is None
    assert "no response" in entry["reason"]


def test_no_answer_found():
    entry = _outcome(_record("I do not know."))
    assert (entry["answer"], entry["method"], entry["correct"]) == (None, None, None)
    assert "no final answer" in entry["reason"]


def test_last_number_fallback_is_marked_and_can_be_refused():
    entry = _outcome(_record("She makes 18 dollars."))
    assert (entry["correct"], entry["method"]) == (True, "last_number")
    assert "last number" in entry["reason"]

    entry = _outcome(_record("She makes 18 dollars."), fallback=False)
    assert entry["correct"] is None
    assert "fallback off" in entry["reason"]
    assert entry["provenance"]["params"]["fallback"] is False


def test_timeout_is_undecided_not_wrong():
    entry = _outcome(_record("\\boxed{9^{9^{9^{9}}}}", answer="5"), timeout=1)
    assert entry["correct"] is None and entry["reward"] is None
    assert "timeout" in entry["reason"]


def test_rerun_writes_the_same_entry():
    first = _outcome(_record("The answer is 18."))
    assert _outcome(_record("The answer is 18.")) == first


def test_processbench_final_answers_agree_with_the_annotation():
    traces = json.loads(_data("processbench_gsm8k.json").read_text("utf-8"))
    with _data("gsm8k_test.jsonl").open(encoding="utf-8") as f:
        gsm8k = [json.loads(line) for line in f]

    def key(text: str) -> str:  # ProcessBench re-spaces some problems
        return " ".join(text.split())

    gold = {key(row["question"]): row["answer"].rsplit("####", 1)[1].strip() for row in gsm8k}
    exact = sum(t["problem"] in {row["question"] for row in gsm8k} for t in traces)
    joined = [t for t in traces if key(t["problem"]) in gold]
    print(f"\nProcessBench join: {exact} of {len(traces)} on the raw text, "
          f"{len(joined)} on normalised whitespace")
    assert len(joined) == len(traces)

    disagreements = []
    for trace in joined:
        record = {"id": trace["id"], "problem": trace["problem"], "steps": trace["steps"],
                  "reference": {"answer": gold[key(trace["problem"])]}}
        entry = _outcome(record)
        if entry["correct"] is not trace["final_answer_correct"]:
            disagreements.append((trace["id"], trace["generator"], trace["final_answer_correct"],
                                  entry["answer"], entry["method"], entry["reference"], entry["reason"],
                                  trace["steps"][-1][-160:]))
    rate = 1 - len(disagreements) / len(joined)
    print(f"ProcessBench GSM8K outcome vs final_answer_correct: {rate:.2%} of {len(joined)}; disagreements:")
    for item in disagreements:
        print("  ", item)
    assert rate >= 0.98
