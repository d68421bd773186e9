"""Step-labelled exports on real ProcessBench GSM8K traces: TRL stepwise rows, Math-Shepherd's tagged
text, OpenRLHF's placeholders and labels, ProcessBench itself, and the label policy that feeds them."""

from __future__ import annotations

import json
import re

import pytest

from helpers import EXAMPLES
from rubricate.formats.export import EXPORTERS, FORMATS, ExportOptions, LabelPolicy, Unusable
from rubricate.formats.export.labels import apply, find
from rubricate.formats.mapping import Mapper
from rubricate.records import provenance, set_feedback

TAG = "ки"


@pytest.fixture(scope="module")
def traces() -> list[dict]:
    mapper = Mapper({}, "processbench")
    return [mapper(json.loads(line)) for line in open(EXAMPLES / "processbench_gsm8k.jsonl", encoding="utf-8")]


def rows(fmt: str, record: dict, **kw) -> list[dict]:
    policy = FORMATS[fmt].policy.merged(kw.pop("threshold", None), kw.pop("after_error", None),
                                        kw.pop("unlabelled", None))
    return EXPORTERS[fmt](record, ExportOptions(policy=policy, **kw))


def judged(record: dict, labels: list) -> dict:
    """The record as `rubricate label` leaves it: a step_labels entry next to ProcessBench's own label."""
    first = next((i for i, v in enumerate(labels) if v is not None and v < 0.5), -1)
    entry = {"method": "judge", "labels": labels, "first_error_step": first, "details": {},
             "provenance": provenance("step_labels", model="openai/judge", params={"method": "judge"})}
    return set_feedback(json.loads(json.dumps(record)), "step_labels", entry)


def test_trl_stepwise_from_processbench_labels_stops_at_the_first_error(traces):
    for record in traces:
        (row,) = rows("trl-stepwise", record)
        first = record["meta"]["label"]
        assert list(row) == ["prompt", "completions", "labels"]
        assert row["prompt"] == record["problem"]
        if first == -1:
            assert row["completions"] == record["steps"]
            assert row["labels"] == [True] * len(record["steps"])
        else:  # steps after ProcessBench's first error are unlabelled: TRL's default cut drops them
            assert row["completions"] == record["steps"][:first + 1]
            assert row["labels"] == [True] * first + [False]
        assert all(type(v) is bool for v in row["labels"])


def test_step_labels_win_over_processbench_and_the_policy_applies(traces):
    record = next(r for r in traces if len(r["steps"]) >= 4)
    n = len(record["steps"])
    soft = [0.9, 0.4, 0.7] + [None] * (n - 3)
    mine = judged(record, soft)
    assert find(mine)[0] == "step_labels"
    (row,) = rows("trl-stepwise", mine)
    assert row["labels"] == [True, False, True]  # after the error kept (keep), the unlabelled tail cut
    (row,) = rows("trl-stepwise", mine, threshold=0.3)
    assert row["labels"] == [True, True, True]
    (row,) = rows("trl-stepwise", mine, after_error="drop")
    assert row["labels"] == [True, False]
    (row,) = rows("trl-stepwise", mine, after_error="bad", unlabelled="bad")
    assert row["labels"] == [True] + [False] * (n - 1)
    (row,) = rows("trl-stepwise", mine, unlabelled="good")
    assert row["labels"] == [True, False, True] + [True] * (n - 3)
    with pytest.raises(Unusable, match="unlabelled"):
        rows("trl-stepwise", mine, unlabelled="reject")
    (row,) = rows("trl-stepwise", mine, labels="processbench")
    assert len(row["labels"]) == (n if record["meta"]["label"] == -1 else record["meta"]["label"] + 1)


def test_policy_edges():
    with pytest.raises(Unusable, match="no labelled step"):
        apply(["a", "b"], [None, 1.0], LabelPolicy())
    with pytest.raises(Unusable, match="3 labels for 2 steps"):
        apply(["a", "b"], [1.0, 1.0, 0.0], LabelPolicy())
    assert apply(["a", "b"], [None, 1.0], LabelPolicy(unlabelled="bad")) == [("a", 0.0), ("b", 1.0)]


def test_records_without_labels_or_steps_are_unusable(traces):
    bare = {"id": "x", "problem": "p", "steps": ["a", "b"]}
    for fmt in ("trl-stepwise", "math-shepherd", "openrlhf-prm", "processbench"):
        with pytest.raises(Unusable, match="no step labels"):
            rows(fmt, bare)
    failed = dict(bare, feedback={"step_labels": {"method": "judge", "labels": [None, None], "first_error_step": None,
                                                  "details": {}, "error": {"reason": "unreadable"}}})
    with pytest.raises(Unusable, match="labelling failed"):
        rows("trl-stepwise", failed)
    with pytest.raises(Unusable, match="unreadable"):
        rows("trl-stepwise", failed, labels="step_labels")
    no_steps = judged({"id": "y", "problem": "p"}, [1.0])
    with pytest.raises(Unusable, match="no steps"):
        rows("trl-stepwise", no_steps)


def parse_tagged(text: str, label: str) -> tuple[str, list[str], list[str]]:
    """Read a Math-Shepherd row back the way its consumers do: one label character per tag."""
    flat = text.replace(TAG, "\0")
    positions = [m.start() for m in re.finditer("\0", flat)]
    assert len(label) == len(flat)
    marks = [label[p] for p in positions]
    pieces = flat.split("\0")
    return pieces[0], pieces[1:-1], marks


def test_math_shepherd_rows(traces):
    for record in traces[:40]:
        (row,) = rows("math-shepherd", record)
        assert list(row) == ["input", "label"]
        first = record["meta"]["label"]
        kept = record["steps"] if first == -1 else record["steps"][:first + 1]
        expected = record["problem"] + " " + "\n".join(f"Step {i + 1}: {s} {TAG}" for i, s in enumerate(kept))
        assert row["input"] == expected
        assert row["input"].count(TAG) == len(kept)
        assert row["label"].count(TAG) == 0
        _, _, marks = parse_tagged(row["input"], row["label"])
        assert marks == (["+"] * len(kept) if first == -1 else ["+"] * first + ["-"])
        # everything but the tags is the same text
        assert row["label"].replace("+", "").replace("-", "") == \
            row["input"].replace(f" {TAG}", " ").replace("+", "").replace("-", "")


def test_math_shepherd_threshold_is_any_success(traces):
    record = next(r for r in traces if len(r["steps"]) >= 3)
    mine = judged(record, [1.0, 0.125, 0.0] + [None] * (len(record["steps"]) - 3))
    (row,) = rows("math-shepherd", mine)
    assert parse_tagged(row["input"], row["label"])[2] == ["+", "+", "-"]
    (row,) = rows("math-shepherd", mine, threshold=0.5)
    assert parse_tagged(row["input"], row["label"])[2] == ["+", "-", "-"]


def test_tag_inside_the_text_is_refused():
    record = judged({"id": "t", "problem": f"What is {TAG}?", "steps": ["a"]}, [1.0])
    with pytest.raises(Unusable, match="step tag"):
        rows("math-shepherd", record)


def test_openrlhf_rows_have_one_label_per_placeholder(traces):
    for record in traces:
        (row,) = rows("openrlhf-prm", record)
        assert list(row) == ["input", "value"]
        assert row["input"].count(TAG) == len(row["value"])
        assert set(row["value"]) <= {"+", "-"}
        # OpenRLHF's ProcessRewardDataset puts the i-th value on the i-th placeholder: the i-th must be the
        # label of the i-th kept step
        first = record["meta"]["label"]
        assert row["value"] == (["+"] * len(record["steps"]) if first == -1 else ["+"] * first + ["-"])
    record = next(r for r in traces if len(r["steps"]) >= 3)
    mine = judged(record, [0.75, 0.25, 1.0] + [None] * (len(record["steps"]) - 3))
    (row,) = rows("openrlhf-prm", mine, soft=True)
    assert row["value"] == [0.75, 0.25, 1.0]
    assert row["input"].count(TAG) == 3


def test_processbench_rows_are_the_input_rows(traces):
    source = [json.loads(line) for line in open(EXAMPLES / "processbench_gsm8k.jsonl", encoding="utf-8")]
    for record, original in zip(traces, source):
        (row,) = rows("processbench", record)
        assert row == {k: original[k] for k in ("id", "generator", "problem", "steps", "final_answer_correct", "label")}
    # a judge's labels become ProcessBench's label: its earliest bad step, -1 when none
    record = traces[0]
    n = len(record["steps"])
    assert rows("processbench", judged(record, [1.0] * n))[0]["label"] == -1
    assert rows("processbench", judged(record, [1.0, 0.0] + [None] * (n - 2)))[0]["label"] == 1
