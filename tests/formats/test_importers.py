"""The `prm800k` and `math-shepherd` presets: labelled public data read into records, and out again.

Round trips: a Math-Shepherd row imported and exported as `math-shepherd` is the same row; a PRM800K
line imported and exported as `trl-stepwise` is the row TRL's converter (examples/datasets/prm800k.py)
makes for that trajectory. The lines are built from real data: GSM8K solutions for Math-Shepherd (its
GSM8K half is GSM8K problems), ProcessBench traces with their human first-error labels for PRM800K.
"""

from __future__ import annotations

import json

import pytest

from helpers import EXAMPLES
from rubricate import schemas
from rubricate.errors import InputError
from rubricate.formats.export import EXPORTERS, FORMATS, ExportOptions
from rubricate.formats.mapping import Mapper

TAG = "ки"


def export(fmt: str, record: dict) -> list[dict]:
    return EXPORTERS[fmt](record, ExportOptions(policy=FORMATS[fmt].policy))


# --- Math-Shepherd -------------------------------------------------------------------------------

def shepherd_rows(gsm8k: list[dict]) -> list[dict]:
    """Math-Shepherd rows as its dataset card shows them: problem, a space, "Step i: ... ки" lines."""
    out = []
    for n, item in enumerate(gsm8k):
        lines = [line for line in item["answer"].split("\n#### ")[0].splitlines() if line.strip()]
        lines[-1] += f" The answer is: {item['answer'].split('#### ')[-1]}"
        steps = [f"Step {i + 1}: {line} {TAG}" for i, line in enumerate(lines)]
        text = item["question"] + " " + "\n".join(steps)
        marks = ["+" if (n + i) % 3 else "-" for i in range(len(steps))]  # mixed labels, errors anywhere
        label = text
        for mark in marks:
            label = label.replace(TAG, mark, 1)
        out.append({"input": text, "label": label, "task": "GSM8K"})
    return out


@pytest.fixture(scope="module")
def shepherd(shared_data_module) -> list[dict]:
    lines = (shared_data_module / "gsm8k_test.jsonl").read_text().splitlines()[:60]
    return shepherd_rows([json.loads(line) for line in lines])


@pytest.fixture(scope="module")
def shared_data_module():
    from helpers import SHARED_DATA

    if not (SHARED_DATA / "gsm8k_test.jsonl").exists():
        pytest.skip(f"real datasets not found at {SHARED_DATA}")
    return SHARED_DATA


def test_math_shepherd_import(shepherd):
    mapper = Mapper(preset="math-shepherd")
    row = shepherd[0]
    record = mapper(row)
    assert not list(schemas.errors(record))
    assert record["problem"] == row["input"].split(" Step 1:")[0]
    assert record["steps"][0].startswith("Step 1: ") and TAG not in record["response"]
    assert [record["response"][a:b] for a, b in record["step_spans"]] == record["steps"]
    labels = record["feedback"]["source_labels"]
    marks = [row["label"][i] for i, ch in enumerate(row["input"].replace(TAG, "\0")) if ch == "\0"]
    assert labels["labels"] == [1.0 if m == "+" else 0.0 for m in marks]
    assert labels["first_error_step"] == (marks.index("-") if "-" in marks else -1)
    assert record["meta"] == {"task": "GSM8K"}  # input and label were used, nothing else is lost


def test_math_shepherd_round_trip(shepherd):
    mapper = Mapper(preset="math-shepherd")
    for row in shepherd:
        record = json.loads(json.dumps(mapper(row)))  # as written and read back
        assert export("math-shepherd", record) == [row]


def test_math_shepherd_to_trl_is_trl_s_conversion(shepherd):
    """TRL's math_shepherd.py: prompt before "Step 1:", completions the "Step i: ..." texts, one bool each."""
    mapper = Mapper(preset="math-shepherd")
    for row in shepherd:
        (out,) = export("trl-stepwise", mapper(row))
        steps = [s.strip() for s in row["input"].split(TAG)[:-1]]
        steps[0] = "Step 1:" + steps[0].split("Step 1:", 1)[1]
        marks = [row["label"][i] for i, ch in enumerate(row["input"].replace(TAG, "\0")) if ch == "\0"]
        assert out["prompt"] == row["input"].split("Step 1:")[0].strip()
        # TRL keeps every step with its own label (Math-Shepherd labels after an error too)
        first_bad = marks.index("-") if "-" in marks else None
        assert out["completions"] == steps
        assert out["labels"] == [m == "+" for m in marks]
        assert first_bad is None or out["labels"][first_bad] is False


def test_math_shepherd_bad_rows():
    mapper = Mapper(preset="math-shepherd")
    with pytest.raises(InputError, match=r"\+ or -"):
        mapper({"input": f"Q? Step 1: a {TAG}", "label": "Q? Step 1: a x", "task": "MATH"})
    with pytest.raises(InputError, match="no 'ки'"):
        mapper({"input": "Q? Step 1: a", "label": "Q? Step 1: a"})
    # no "Step 1:": the problem ends at its first "?", as TRL's converter reads it
    record = mapper({"input": f"How many? It is 3. {TAG}", "label": "How many? It is 3. +"})
    assert record["problem"] == "How many?" and record["steps"] == ["It is 3."]


# --- PRM800K ----------------------------------------------------------------------------------------

def prm800k_line(trace: dict, *, neutral_at: int | None = None) -> dict:
    """A phase-2 PRM800K line for a real ProcessBench trace: the model's steps pre-generated, labels up to
    and including the human-annotated first error (rated -1), none after it."""
    steps, first = trace["steps"], trace["label"]
    labelled = steps if first == -1 else steps[:first + 1]
    label_steps = []
    for i, text in enumerate(labelled):
        rating = -1 if i == first else (0 if i == neutral_at else 1)
        entry = {"completions": [{"text": text, "rating": rating, "flagged": None}], "human_completion": None,
                 "chosen_completion": None if i == first else 0}
        label_steps.append(entry)
    return {"labeler": "00000000-0000-0000-0000-000000000000", "timestamp": "2023-01-01T00:00:00", "generation": 1,
            "is_quality_control_question": False, "is_initial_screening_question": False,
            "question": {"problem": trace["problem"], "ground_truth_solution": trace["reference"]["solution"],
                         "ground_truth_answer": trace["reference"]["answer"], "pre_generated_steps": steps,
                         "pre_generated_answer": None, "pre_generated_verifier_score": 0.5},
            "label": {"steps": label_steps, "total_time": 1000,
                      "finish_reason": "solution" if first == -1 else "found_error"}}


@pytest.fixture(scope="module")
def processbench() -> list[dict]:
    return [json.loads(line) for line in open(EXAMPLES / "processbench_gsm8k.jsonl", encoding="utf-8")]


def test_prm800k_phase2_lines(processbench):
    mapper = Mapper(preset="prm800k")
    for trace in processbench:
        line = prm800k_line(trace)
        record = mapper(line)
        assert not list(schemas.errors(record))
        first = trace["label"]
        assert record["problem"] == trace["problem"]
        assert record["reference"] == {"solution": trace["reference"]["solution"],
                                       "answer": trace["reference"]["answer"]}
        # the model's whole solution, the steps after the error unlabelled
        assert record["steps"] == trace["steps"]
        labels = record["feedback"]["source_labels"]
        n = len(trace["steps"])
        assert labels["labels"] == ([1.0] * n if first == -1 else [1.0] * first + [0.0] + [None] * (n - first - 1))
        assert labels["first_error_step"] == first
        assert record["meta"]["label"] == line["label"]  # the raw labels stay: nothing lost
        # TRL's converter: for the found_error step every (unchosen) completion becomes a row, the
        # chosen prefix plus that completion, labelled rating == 1; a finished solution gives the
        # chosen trajectory. Ours is that row.
        (row,) = export("trl-stepwise", record)
        expected_steps = trace["steps"] if first == -1 else trace["steps"][:first + 1]
        assert row == {"prompt": trace["problem"], "completions": expected_steps,
                       "labels": [True] * (len(expected_steps) - (first != -1)) + [False] * (first != -1)}
        # and as ProcessBench: the full trace, the error's index
        (pb,) = export("processbench", record)
        assert pb["steps"] == trace["steps"] and pb["label"] == first


def test_prm800k_neutral_ratings(processbench):
    trace = next(t for t in processbench if t["label"] >= 2)
    line = prm800k_line(trace, neutral_at=0)
    bad = Mapper(preset="prm800k")(line)["feedback"]["source_labels"]
    good = Mapper(preset="prm800k-neutral-good")(line)["feedback"]["source_labels"]
    assert bad["labels"][0] == 0.0 and good["labels"][0] == 1.0  # TRL: rating == 1 only is good
    assert bad["details"]["ratings"][0] == 0 and bad["details"]["neutral"] == "bad"
    assert bad["first_error_step"] == good["first_error_step"] == trace["label"]  # a neutral step is no error
    (row,) = export("trl-stepwise", Mapper(preset="prm800k")(line))
    assert row["labels"][0] is False


def test_prm800k_phase1_alternatives_and_human_completion():
    """Phase 1: several rated alternatives per step, the chosen one kept; a labeller-written step is good."""
    line = {"question": {"problem": "What is $2+3\\cdot 4$?", "ground_truth_answer": "14"},
            "label": {"finish_reason": "solution", "steps": [
                {"completions": [{"text": "First $3\\cdot 4=12$.", "rating": 1},
                                 {"text": "First $2+3=5$.", "rating": -1}], "human_completion": None,
                 "chosen_completion": 0},
                {"completions": [{"text": "So $2+12=15$.", "rating": -1}],
                 "human_completion": {"text": "So $2+12=14$.", "rating": None}, "chosen_completion": None},
                {"completions": [{"text": "# Answer\n\n14", "rating": 1}], "human_completion": None,
                 "chosen_completion": 0}]}}
    record = Mapper(preset="prm800k")(line)
    assert record["steps"] == ["First $3\\cdot 4=12$.", "So $2+12=14$.", "# Answer\n\n14"]
    assert record["feedback"]["source_labels"]["labels"] == [1.0, 1.0, 1.0]
    assert record["reference"]["answer"] == "14"
    (row,) = export("trl-stepwise", record)
    assert row["labels"] == [True, True, True]
