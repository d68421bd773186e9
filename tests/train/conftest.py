"""Fixtures for the trainer tests: a tiny random Qwen2-style model with a BPE tokenizer trained on the
example traces (no hub), and exports of the real ProcessBench GSM8K slice written by `rubricate export`
itself."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import EXAMPLES, write_jsonl

from rubricate.records import provenance

EXAMPLE = EXAMPLES / "processbench_gsm8k.jsonl"


def run_cli(*args: str) -> None:
    from rubricate.cli.main import main

    try:
        main(list(args))
    except SystemExit as exc:  # main() exits only on failure
        raise AssertionError(f"rubricate {' '.join(args)} exited {exc.code}") from exc


@pytest.fixture(scope="session")
def raw_rows() -> list[dict]:
    return [json.loads(line) for line in open(EXAMPLE, encoding="utf-8")]


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, raw_rows) -> str:
    pytest.importorskip("trl")
    from rubricate.train.tiny import build

    texts = [r["problem"] for r in raw_rows] + [s for r in raw_rows for s in r["steps"]]
    texts += [r["reference"]["solution"] for r in raw_rows] + ["<think> </think> The answer is \\boxed{24}."]
    return str(build(tmp_path_factory.mktemp("tiny") / "model", texts, vocab_size=600))


def _with_feedback(row: dict) -> dict:
    """A ProcessBench row as later stages leave it: a verified refinement (the GSM8K solution, boxed) and a
    ThinkPRM-template judge chain that finds the gold first error."""
    answer = row["reference"]["answer"]
    solution = row["reference"]["solution"].split("####")[0].strip() + f"\nThe answer is \\boxed{{{answer}}}."
    first = row["label"]
    verdicts = "\n".join(f"Step {i + 1}: \\boxed{{{'incorrect' if i == first else 'correct'}}}"
                         for i in range(len(row["steps"]) if first == -1 else first + 1))
    chain = f"Let's verify step by step:\n{verdicts}\nIs the solution correct? {'Yes' if first == -1 else 'No'}"
    n = len(row["steps"])
    labels = [1.0] * n if first == -1 else [1.0] * first + [0.0] + [None] * (n - first - 1)
    feedback = {
        "refinement": {"samples": [{"text": solution, "answer": answer, "correct": True, "reward": 1.0}],
                       "chosen": 0, "critique_type": "ground-truth",
                       "provenance": provenance("refinement", model="openai/policy")},
        "step_labels": {"method": "judge", "labels": labels, "first_error_step": first,
                        "details": {"template": "thinkprm", "texts": [chain], "votes": [first]},
                        "provenance": provenance("step_labels", model="openai/judge", params={"method": "judge"})},
    }
    return {**row, "feedback": feedback}


@pytest.fixture(scope="session")
def export(tmp_path_factory, raw_rows):
    """export(fmt, n=None, test_size=None) -> the folder `rubricate export --to fmt` wrote for the first n
    example traces (a datasets folder with train and, with test_size, test splits)."""
    root = tmp_path_factory.mktemp("exports")
    made: dict[tuple, str] = {}

    def make(fmt: str, n: int | None = None, test_size: float | None = None) -> str:
        key = (fmt, n, test_size)
        if key not in made:
            rows = [_with_feedback(r) for r in raw_rows[:n]]
            src = write_jsonl(root / f"in-{n}.jsonl", rows)
            out = root / f"{fmt}-{n}-{test_size}"
            extra = ["--test-size", str(test_size)] if test_size else []
            run_cli("export", str(src), "--preset", "processbench", "--to", fmt, "-o", str(out), *extra)
            made[key] = str(out)
        return made[key]

    return make


@pytest.fixture(scope="session")
def log_history():
    """log_history(output) -> the run's logged metrics, from the trainer state it saved."""
    def read(output: str | Path) -> list[dict]:
        return json.loads((Path(output) / "trainer_state.json").read_text())["log_history"]

    return read
