"""Likelihood gain: the mapping from contributions to labels, the prompts that are scored, and real
log-probabilities from the bundled local model."""

import json
import math

import pytest

from helpers import EXAMPLES, write_jsonl
from rubricate import schemas
from rubricate.formats.mapping import Mapper
from rubricate.generators.label_likelihood import CUE, prompts, to_label


def test_the_mapping_is_the_logistic_function():
    assert to_label(0.0) == 0.5
    assert to_label(1.0) == pytest.approx(1 / (1 + math.exp(-1)))
    assert to_label(-1.0) == pytest.approx(0.2689414)
    assert to_label(-800.0) == 0.0 and to_label(800.0) == 1.0  # no overflow on wild log-probabilities
    values = [to_label(d / 4) for d in range(-40, 41)]
    assert values == sorted(values) and all(0 <= v <= 1 for v in values)


def test_prompts_grow_one_step_at_a_time_and_end_in_the_cue():
    mapper = Mapper({}, "processbench")
    record = mapper(json.loads(open(EXAMPLES / "processbench_gsm8k.jsonl", encoding="utf-8").readline()))
    n = len(record["steps"])
    ps = prompts(record, "Question: Q\nAnswer:", n)
    assert len(ps) == n + 1 and all(p.endswith(CUE) for p in ps)
    assert ps[0] == "Question: Q\nAnswer:" + CUE
    assert ps[-1] == "Question: Q\nAnswer:\n" + record["response"] + CUE
    bodies = [p[: -len(CUE)] for p in ps]
    for k in range(1, n + 1):
        assert record["steps"][k - 1] in bodies[k] and bodies[k].startswith(bodies[k - 1].rstrip())


def examples() -> list[dict]:
    mapper = Mapper({}, "processbench")
    return [mapper(json.loads(line)) for line in open(EXAMPLES / "processbench_gsm8k.jsonl", encoding="utf-8")]



def test_likelihood_with_the_local_model_gives_real_logprobs(rubricate, local_model, tmp_path):
    rows = sorted((r for r in examples() if r["meta"]["final_answer_correct"]), key=lambda r: len(r["response"]))[:2]
    result = rubricate("label", str(write_jsonl(tmp_path / "in.jsonl", rows)), "--method", "likelihood",
                       "--model", "local")
    assert result.code == 0, result.stderr
    for record in result.records():
        entry = record["feedback"]["step_labels"]
        assert list(schemas.errors(entry, "step_labels")) == []
        lps = entry["details"]["logprobs"]
        assert all(v < 0 and math.isfinite(v) for v in lps)
        # The whole trace ends on the right answer, so the model should find it likelier than from the
        # problem alone.
        assert lps[-1] > lps[0]
        assert entry["labels"] == pytest.approx([1 / (1 + math.exp(-d)) for d in entry["details"]["contributions"]],
                                                abs=1e-5)
