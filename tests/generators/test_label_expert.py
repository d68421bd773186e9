"""Expert alignment (SRL's similarity) on real ProcessBench GSM8K traces, with GSM8K's reference
solutions as the experts, read through the gsm8k preset."""

import json
from difflib import SequenceMatcher

import pytest

from helpers import SHARED_DATA
from rubricate import schemas
from rubricate.formats.mapping import Mapper
from rubricate.generators.label_expert import DEFAULT_THRESHOLD, expert_steps, label_record


@pytest.fixture(scope="module")
def traces(shared_data) -> list[dict]:
    """ProcessBench traces, each given the gsm8k preset's reading of its GSM8K solution."""
    gsm8k = Mapper({}, "gsm8k")
    experts = {}
    for line in open(shared_data / "gsm8k_test.jsonl", encoding="utf-8"):
        row = gsm8k(json.loads(line))
        experts[" ".join(row["problem"].split())] = row["reference"]
    processbench = Mapper({}, "processbench")
    out = []
    for trace in json.loads((shared_data / "processbench_gsm8k.json").read_text())[:60]:
        record = processbench(trace)
        record["reference"] = experts[" ".join(record["problem"].split())]
        out.append(record)
    return out


@pytest.fixture(scope="module")
def shared_data():
    if not (SHARED_DATA / "processbench_gsm8k.json").exists():
        pytest.skip("shared data not found")
    return SHARED_DATA


def test_each_label_is_the_best_ratio_over_the_expert_steps(traces):
    for record in traces:
        entry = label_record(json.loads(json.dumps(record)))["feedback"]["step_labels"]
        assert list(schemas.errors(entry, "step_labels")) == []
        experts = record["reference"]["steps"]
        assert entry["details"]["source"] == "reference.steps" and "expert_steps" not in entry["details"]
        for step, label, link in zip(record["steps"], entry["labels"], entry["details"]["alignment"]):
            ratios = [SequenceMatcher(None, step, e, autojunk=False).ratio() for e in experts]
            assert label == pytest.approx(max(ratios), abs=1e-6)
            assert ratios[link["expert_step"]] == pytest.approx(label, abs=1e-6)
        first = next((i for i, v in enumerate(entry["labels"]) if v < DEFAULT_THRESHOLD), -1)
        assert entry["first_error_step"] == first


def test_the_expert_s_own_steps_are_labelled_perfect(traces):
    record = json.loads(json.dumps(traces[0]))
    record["steps"] = list(record["reference"]["steps"])
    record.pop("step_spans", None)
    entry = label_record(record)["feedback"]["step_labels"]
    assert entry["labels"] == [1.0] * len(record["steps"]) and entry["first_error_step"] == -1
    assert [a["expert_step"] for a in entry["details"]["alignment"]] == list(range(len(record["steps"])))


def test_a_solution_is_segmented_as_the_gsm8k_preset_reads_it(traces):
    for record in traces[:20]:
        solution_only = dict(record, reference={"solution": record["reference"]["solution"]})
        found = expert_steps(solution_only)
        assert found == (record["reference"]["steps"], "reference.solution")
    entry = label_record(dict(traces[0], reference={"solution": traces[0]["reference"]["solution"]}),
                         into="srl", threshold=0.9)["feedback"]["srl"]
    assert entry["details"]["expert_steps"] == traces[0]["reference"]["steps"]
    assert entry["first_error_step"] == next(i for i, v in enumerate(entry["labels"]) if v < 0.9)


def test_without_an_expert_solution_the_entry_says_why(traces):
    record = dict(traces[0], reference={"answer": "3"})
    entry = label_record(record)["feedback"]["step_labels"]
    assert entry["first_error_step"] is None and "no expert solution" in entry["error"]["reason"]
    assert list(schemas.errors(entry, "step_labels")) == []
    assert list(schemas.errors(record)) == []
