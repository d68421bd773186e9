"""The rollout searches on random MC patterns, the prompts rollouts continue on real traces, and a
small run with the bundled local model as the policy."""

import json
import math
import random

import pytest

from helpers import EXAMPLES, write_jsonl
from rubricate import schemas
from rubricate.formats.mapping import Mapper
from rubricate.generators.label_rollout import Estimator, bisect_first_zero, first_zero, trace_outcome


def run_bisect(mc: list[float], known: dict[int, float] | None = None) -> tuple[int, list[int]]:
    """Drive the binary search over a fixed MC pattern: (its answer, the steps it asked for)."""
    asked = []
    search = bisect_first_zero(len(mc), known)
    try:
        k = next(search)
        while True:
            asked.append(k)
            k = search.send(mc[k])
    except StopIteration as done:
        return done.value, asked


def monotone(rng: random.Random, n: int) -> list[float]:
    """MC positive up to a random step, 0 from there on (or never)."""
    cut = rng.randint(0, n)
    return [rng.randint(1, 8) / 8 if k < cut else 0.0 for k in range(n)]


def test_binary_finds_the_same_first_zero_as_linear_with_fewer_prefixes():
    rng = random.Random(20250)
    for _ in range(3000):
        n = rng.randint(1, 24)
        mc = monotone(rng, n)
        found, asked = run_bisect(mc)
        assert found == first_zero(mc)
        assert len(asked) == len(set(asked)) <= math.ceil(math.log2(n + 1))
        if n >= 3:
            assert len(asked) < n  # linear evaluates all n prefixes


def test_binary_with_the_last_step_known_from_the_outcome():
    rng = random.Random(7)
    for _ in range(2000):
        n = rng.randint(1, 16)
        mc = monotone(rng, n)
        found, asked = run_bisect(mc, {n - 1: mc[-1]})
        assert found == first_zero(mc) and n - 1 not in asked
        if mc[-1] > 0:
            assert asked == []  # a trace that ends right has, by the assumption, no bad step
        else:
            assert len(asked) <= math.ceil(math.log2(n))


def test_on_any_pattern_binary_lands_on_a_step_where_mc_drops_to_zero():
    rng = random.Random(11)
    for _ in range(3000):
        n = rng.randint(1, 20)
        mc = [rng.choice([0.0, 0.25, 1.0]) for _ in range(n)]
        found, _ = run_bisect(mc)
        if found == -1:
            assert mc[-1] > 0
        else:
            assert mc[found] == 0 and (found == 0 or mc[found - 1] > 0)


@pytest.fixture(scope="module")
def traces() -> list[dict]:
    mapper = Mapper({}, "processbench")
    return [mapper(json.loads(line)) for line in open(EXAMPLES / "processbench_gsm8k.jsonl", encoding="utf-8")]


def test_prefix_prompts_are_the_trace_as_written(traces):
    for record in traces[:20]:
        estimate = Estimator(record, None, "Question: Q\nAnswer:", "1", 4, {}, 3.0)
        n = len(record["steps"])
        prompts = [estimate.prompt(k) for k in range(n)]
        assert prompts[-1] == "Question: Q\nAnswer:\n" + record["response"]
        for k in range(n - 1):
            assert prompts[k + 1].startswith(prompts[k])  # each prefix extends the one before
            assert prompts[k].endswith(record["steps"][k] + "\n\n")


def test_the_trace_s_own_outcome_decides_the_last_step(traces):
    wrong = next(r for r in traces if r["meta"]["final_answer_correct"] is False)
    right = next(r for r in traces if r["meta"]["final_answer_correct"] is True)
    assert trace_outcome(wrong, wrong["reference"]["answer"], 3.0) is False
    assert trace_outcome(right, right["reference"]["answer"], 3.0) is True
    assert trace_outcome(dict(right, response="no answer here", steps=["no answer here"]), "5", 3.0) is None
    given = dict(wrong, feedback={"outcome": {"correct": True}})
    assert trace_outcome(given, wrong["reference"]["answer"], 3.0) is True  # verify's verdict is reused



def test_a_small_rollout_with_the_local_model_runs_end_to_end(rubricate, local_model, traces, tmp_path):
    row = min(traces, key=lambda r: (len(r["steps"]), len(r["response"])))  # 2 steps: 1 prefix to roll out
    result = rubricate("label", str(write_jsonl(tmp_path / "in.jsonl", [row])), "--method", "rollout",
                       "--policy-model", "local", "--rollouts", "2", "--max-tokens", "12", "--seed", "1")
    assert result.code == 0, result.stderr
    entry = result.records()[0]["feedback"]["step_labels"]
    assert list(schemas.errors(entry, "step_labels")) == []
    n = len(row["steps"])
    assert entry["details"]["continuations"] == 2 * (n - 1)
    assert all(0 <= v <= 1 for v in entry["details"]["mc"])
    assert entry["first_error_step"] == first_zero(entry["details"]["mc"])
