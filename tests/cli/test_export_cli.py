"""`rubricate export` end to end: output forms, held-out splits, rejects and the summary, on real data."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from helpers import EXAMPLES, run_process, write_jsonl

PB = str(EXAMPLES / "processbench_gsm8k.jsonl")


def lines(path) -> list[dict]:
    return [json.loads(line) for line in open(path, encoding="utf-8")]


def test_stdout_and_the_summary(rubricate):
    result = rubricate("export", PB, "--preset", "processbench", "--to", "trl-stepwise")
    assert result.code == 0, result.stderr
    rows = result.records()
    assert len(rows) == 80 and set(rows[0]) == {"prompt", "completions", "labels"}
    assert "80 records -> 80 rows (records by rows given: 1: 80)" in result.stderr
    assert "splits: train 80" in result.stderr


def test_rows_per_record_and_rejects_are_listed(rubricate, tmp_path, shared_data):
    """SRL gives N-1 rows per N-step solution; a problem without an expert solution is listed, not lost."""
    source = [json.loads(line) for line in (shared_data / "gsm8k_test.jsonl").read_text().splitlines()[:10]]
    source[3] = {"question": source[3]["question"], "answer": "#### 7"}  # no solution steps
    path = write_jsonl(tmp_path / "in.jsonl", source)
    out = tmp_path / "srl.jsonl"
    result = rubricate("export", str(path), "--preset", "gsm8k", "--to", "srl", "-o", str(out))
    assert result.code == 0, result.stderr
    rows = lines(out)
    expected = sum(len([x for x in s["answer"].split("\n#### ")[0].splitlines() if x.strip()]) - 1
                   for i, s in enumerate(source) if i != 3)
    assert len(rows) == expected
    assert f"10 records -> {expected} rows" in result.stderr and "0: 1" in result.stderr
    assert "1 records lack what srl needs" in result.stderr
    rejects = lines(f"{out}.rejects.jsonl")
    assert len(rejects) == 1
    assert "SRL needs at least 2" in rejects[0]["reason"] and rejects[0]["format"] == "srl"
    assert rejects[0]["record"]["problem"] == source[3]["question"]
    # to stdout without --rejects, they are still listed on stderr
    result = rubricate("export", str(path), "--preset", "gsm8k", "--to", "srl")
    assert result.code == 0 and "SRL needs at least 2" in result.stderr


def test_bad_input_lines_go_to_the_same_rejects(rubricate, tmp_path):
    path = tmp_path / "in.jsonl"
    good = json.loads(open(PB, encoding="utf-8").readline())
    path.write_text(json.dumps(good) + "\n{not json\n" + json.dumps({"problem": "no steps here"}) + "\n")
    rejects = tmp_path / "rej.jsonl"
    result = rubricate("export", str(path), "--preset", "processbench", "--to", "trl-stepwise",
                       "-o", str(tmp_path / "out.jsonl"), "--on-error", "skip", "--rejects", str(rejects))
    assert result.code == 0, result.stderr
    assert len(lines(tmp_path / "out.jsonl")) == 1
    reasons = [r["reason"] for r in lines(rejects)]
    assert len(reasons) == 2 and reasons[0].startswith("invalid JSON") and "no step" in reasons[1]
    # --on-error fail (the default): the bad line stops the run and nothing is written
    result = rubricate("export", str(path), "--preset", "processbench", "--to", "trl-stepwise",
                       "-o", str(tmp_path / "out2.jsonl"))
    assert result.code == 1 and "invalid JSON" in result.stderr
    assert not (tmp_path / "out2.jsonl").exists() and not (tmp_path / "out2.jsonl.rejects.jsonl").exists()


def test_datasets_folder_with_a_held_out_split(rubricate, tmp_path):
    from datasets import load_from_disk

    out = tmp_path / "pb"
    result = rubricate("export", PB, "--preset", "processbench", "--to", "openrlhf-prm", "-o", str(out),
                       "--test-size", "0.25", "--seed", "3")
    assert result.code == 0, result.stderr
    ds = load_from_disk(str(out))
    assert set(ds) == {"train", "test"} and (ds["train"].num_rows, ds["test"].num_rows) == (60, 20)
    assert ds["train"].column_names == ["input", "value"]
    for row in ds["test"]:
        assert row["input"].count("ки") == len(row["value"])
    # the same seed gives the same split, another seed another one; rubricate reads the folder back
    again = tmp_path / "again"
    assert rubricate("export", PB, "--preset", "processbench", "--to", "openrlhf-prm", "-o", str(again),
                     "--test-size", "0.25", "--seed", "3").code == 0
    assert load_from_disk(str(again))["test"]["input"] == ds["test"]["input"]
    other = tmp_path / "other"
    assert rubricate("export", PB, "--preset", "processbench", "--to", "openrlhf-prm", "-o", str(other),
                     "--test-size", "0.25", "--seed", "4").code == 0
    assert load_from_disk(str(other))["test"]["input"] != ds["test"]["input"]
    read = rubricate("stats", str(out), "--split", "test", "--map", "problem=input", "--json")
    assert read.code == 0 and json.loads(read.stdout)["records"] == 20
    # overwriting a datasets folder works; overwriting some other folder does not
    assert rubricate("export", PB, "--preset", "processbench", "--to", "openrlhf-prm", "-o", str(out)).code == 0
    assert set(load_from_disk(str(out))) == {"train"}
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    result = rubricate("export", PB, "--preset", "processbench", "--to", "openrlhf-prm", "-o", str(tmp_path / "mine"))
    assert result.code == 2 and (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_files_per_split_and_split_names(rubricate, tmp_path):
    out = tmp_path / "pb.parquet"
    result = rubricate("export", PB, "--preset", "processbench", "--to", "processbench", "-o", str(out),
                       "--test-size", "8")
    assert result.code == 0, result.stderr
    train, test = pq.read_table(tmp_path / "pb.train.parquet"), pq.read_table(tmp_path / "pb.test.parquet")
    assert (train.num_rows, test.num_rows) == (72, 8) and not out.exists()
    result = rubricate("export", PB, "--preset", "processbench", "--to", "verl", "-o", str(tmp_path / "v") + "/",
                       "--format", "jsonl", "--split", "test")
    assert result.code == 0, result.stderr
    rows = lines(tmp_path / "v" / "test.jsonl")
    assert [r["extra_info"]["split"] for r in rows] == ["test"] * len(rows)
    assert [r["extra_info"]["index"] for r in rows] == list(range(len(rows)))


def test_one_row_per_problem_unless_told(rubricate, tmp_path):
    first = json.loads(open(PB, encoding="utf-8").readline())
    rollouts = [dict(first, id=f"r{i}", group="g1") for i in range(3)]
    path = write_jsonl(tmp_path / "rollouts.jsonl", rollouts)
    result = rubricate("export", str(path), "--preset", "processbench", "--to", "trl-grpo")
    assert result.code == 0 and len(result.records()) == 1
    assert "2 records repeat a problem" in result.stderr
    result = rubricate("export", str(path), "--preset", "processbench", "--to", "trl-grpo", "--no-dedupe")
    assert len(result.records()) == 3


def test_usage_errors(rubricate, tmp_path):
    base = ("export", PB, "--preset", "processbench")
    result = rubricate(*base, "--to", "trl-stepwise", "--test-size", "0.2")
    assert result.code == 2 and "needs -o" in result.stderr
    assert rubricate(*base, "--to", "trl-stepwise", "--soft").code == 2
    assert rubricate("export", PB, "--preset", "nope", "--to", "srl").code == 2
    assert rubricate(*base, "--to", "nope").code == 2
    assert rubricate(*base, "--to", "srl", "--format", "parquet").code == 2
    result = rubricate(*base, "--to", "trl-stepwise", "-o", str(tmp_path / "x.jsonl"), "--test-size", "80")
    assert result.code == 2 and "nothing to train on" in result.stderr
    # nothing usable at all: an input error, nothing written
    result = rubricate(*base, "--to", "trl-dpo", "-o", str(tmp_path / "dpo.jsonl"))
    assert result.code == 1 and "no record gave a trl-dpo row" in result.stderr
    assert not (tmp_path / "dpo.jsonl").exists()


def test_in_a_shell_pipeline(tmp_path):
    steps = run_process("steps", PB, "--preset", "processbench")
    assert steps.returncode == 0
    out = tmp_path / "ms.jsonl"
    result = run_process("export", "--to", "math-shepherd", "-o", str(out), stdin=steps.stdout)
    assert result.returncode == 0, result.stderr
    rows = lines(out)
    assert len(rows) == 80
    for row, source in zip(rows, lines(PB)):
        assert row["input"].startswith(source["problem"] + " Step 1: " + source["steps"][0] + " ки")
        kept = len(source["steps"]) if source["label"] == -1 else source["label"] + 1
        assert row["input"].count("ки") == kept
        marks = [row["label"][i] for i, ch in enumerate(row["input"].replace("ки", "\0")) if ch == "\0"]
        assert marks == ["+"] * (kept - (source["label"] != -1)) + ["-"] * (source["label"] != -1)


@pytest.mark.parametrize("fmt", ["trl-stepwise", "math-shepherd", "openrlhf-prm", "processbench", "verl",
                                 "critique-grpo", "trl-grpo", "srl"])
def test_every_format_writes_parquet(rubricate, tmp_path, fmt):
    out = tmp_path / f"{fmt}.parquet"
    result = rubricate("export", PB, "--preset", "processbench", "--to", fmt, "-o", str(out))
    assert result.code == 0, result.stderr
    assert pq.read_table(out).num_rows > 0


def test_the_cli_knows_every_format():
    from rubricate.cli.export import FORMAT_NAMES
    from rubricate.formats.export import EXPORTERS

    assert FORMAT_NAMES == tuple(EXPORTERS)
