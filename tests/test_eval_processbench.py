"""`eval processbench`: its arithmetic against ProcessBench's own definition (code/run_eval.py) on
constructed predictions over the real GSM8K subset, the confusion summary, and where predictions
come from."""

import json
import random

import numpy as np
import pytest

from helpers import SHARED_DATA, write_jsonl
from rubricate.evaluation.processbench import evaluate, f1, predicted
from rubricate.generators.step_labels import entry as step_entry
from rubricate.generators.step_labels import failed, labels_from_first_error, make_provenance


def run_eval_reference(labels: list[int], predictions: list) -> tuple[float, float, float]:
    """ProcessBench's run_eval.py, restated: match = prediction == label; accuracy in percent on the
    samples with label != -1 and on those with label == -1; F1 their harmonic mean."""
    res = [{"label": lab, "match": pred == lab} for lab, pred in zip(labels, predictions)]
    acc1 = np.mean([e["match"] for e in res if e["label"] != -1]) * 100
    acc2 = np.mean([e["match"] for e in res if e["label"] == -1]) * 100
    return acc1, acc2, 2 * acc1 * acc2 / (acc1 + acc2)


def record(trace: dict, pred, source: str = "step_labels") -> dict:
    n = len(trace["steps"])
    prov = make_provenance("judge", params={})
    if pred is None:
        entry = failed("judge", n, "unreadable judge answer", prov)
    else:
        entry = step_entry("judge", labels_from_first_error(min(pred, n - 1), n), pred, {}, prov)
    return {"id": trace["id"], "problem": trace["problem"], "steps": trace["steps"],
            "meta": {"label": trace["label"], "generator": trace["generator"]}, "feedback": {source: entry}}


@pytest.fixture(scope="module")
def traces() -> list[dict]:
    if not (SHARED_DATA / "processbench_gsm8k.json").exists():
        pytest.skip("shared ProcessBench data not found")
    return json.loads((SHARED_DATA / "processbench_gsm8k.json").read_text())


def noisy(trace: dict, rng: random.Random):
    """A prediction that is right sometimes, and otherwise wrong in every way there is."""
    n = len(trace["steps"])
    return rng.choice([trace["label"], trace["label"], -1, None, rng.randrange(n), 0, n - 1])


def test_arithmetic_matches_processbench_on_constructed_predictions(traces):
    rng = random.Random(5)
    for _ in range(20):
        preds = [noisy(t, rng) for t in traces]
        ours = evaluate([record(t, p) for t, p in zip(traces, preds)])["overall"]
        a, b, f = run_eval_reference([t["label"] for t in traces], preds)
        assert (ours["error_accuracy"], ours["correct_accuracy"]) == (pytest.approx(a), pytest.approx(b))
        assert ours["f1"] == pytest.approx(f)
        assert (ours["erroneous"], ours["correct"]) == (207, 193)


def test_confusion_summary_sorts_every_miss(traces):
    rng = random.Random(9)
    preds = [noisy(t, rng) for t in traces]
    summary = evaluate([record(t, p) for t, p in zip(traces, preds)])["overall"]
    expected = {"too_early": 0, "too_late": 0, "missed": 0, "false_alarm": 0, "no_prediction": 0}
    for t, p in zip(traces, preds):
        gold = t["label"]
        if p == gold:
            continue
        if p is None:
            expected["no_prediction"] += 1
        elif gold == -1:
            expected["false_alarm"] += 1
        elif p == -1:
            expected["missed"] += 1
        else:
            expected["too_early" if p < gold else "too_late"] += 1
    assert summary["confusion"] == expected
    right = sum(p == t["label"] for t, p in zip(traces, preds))
    assert right + sum(expected.values()) == len(traces)


def test_groups_by_subset_and_generator(traces):
    rows = [record(t, t["label"] if i % 3 else -1) for i, t in enumerate(traces)]
    rows += [dict(record(traces[0], -1), id="math-7", meta={"label": 2, "generator": "x"})]
    result = evaluate(rows)
    assert set(result["by_subset"]) == {"gsm8k", "math"}
    assert result["by_subset"]["math"]["error_accuracy"] == 0.0 and result["by_subset"]["math"]["f1"] is None
    for name, scores in result["by_generator"].items():
        mine = [(t, r) for t, r in zip(traces, rows) if t["generator"] == name]
        if not mine:
            continue
        labels = [t["label"] for t, _ in mine]
        preds = [r["feedback"]["step_labels"]["first_error_step"] for _, r in mine]
        if -1 in labels and any(lab != -1 for lab in labels):
            assert scores["f1"] == pytest.approx(run_eval_reference(labels, preds)[2])


def test_edge_cases():
    assert f1(0.0, 0.0) == 0.0 and f1(None, 50.0) is None and f1(100.0, 50.0) == pytest.approx(200 / 3)
    base = {"id": "gsm8k-1", "meta": {"label": 1}}
    assert evaluate([{**base, "meta": {}}])["skipped"] == {"no gold label": 1}
    assert evaluate([{"id": "gsm8k-1", "label": -1, "feedback": {"step_labels": {"first_error_step": -1}}}]
                    )["overall"]["correct_accuracy"] == 100.0  # a top-level label is read too
    # critique: null with verdict correct means -1; null with verdict incorrect, or an error, no prediction
    assert predicted({"feedback": {"critique": {"first_error_step": None, "verdict": "correct"}}}, "critique") == -1
    assert predicted({"feedback": {"critique": {"first_error_step": None, "verdict": "incorrect"}}}, "critique") is None
    assert predicted({"feedback": {"critique": {"first_error_step": 2, "verdict": "incorrect"}}}, "critique") == 2
    assert predicted({"feedback": {"step_labels": {"first_error_step": 2, "error": {"reason": "x"}}}}) is None
    assert predicted({"feedback": {}}) is None


def test_the_command(rubricate, traces, tmp_path):
    rng = random.Random(3)
    preds = [noisy(t, rng) for t in traces]
    src = write_jsonl(tmp_path / "in.jsonl", [record(t, p, "judge_labels") for t, p in zip(traces, preds)])
    out = rubricate("eval", "processbench", str(src), "--from", "judge_labels", "--json")
    assert out.code == 0, out.stderr
    result = json.loads(out.stdout)
    a, b, f = run_eval_reference([t["label"] for t in traces], preds)
    assert result["overall"]["f1"] == pytest.approx(f) and result["source"] == "judge_labels"
    table = rubricate("eval", "processbench", str(src), "--from", "judge_labels")
    assert table.code == 0 and f"{f:.1f}" in table.stdout and f"{a:.1f}" in table.stdout
    assert "Llama-3.1-8B-Instruct" in table.stdout
    # Predictions from an entry that is not there: every sample counts as wrong, nothing crashes.
    missing = json.loads(rubricate("eval", "processbench", str(src), "--json").stdout)
    assert missing["overall"]["confusion"]["no_prediction"] == len(traces)
    assert rubricate("eval", "processbench", str(src), "--from", "not a name").code == 2
