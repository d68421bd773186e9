"""`--push-to-hub`: the dataset card, and the upload plan checked at the huggingface_hub / datasets call
boundary. HF_ENDPOINT points at a closed port on 127.0.0.1, so a call that slipped past the stand-ins
would fail at once instead of reaching the network."""

from __future__ import annotations

import json

import pytest
import yaml

from helpers import EXAMPLES
from rubricate.formats.mapping import Mapper
from rubricate.records import provenance, set_feedback

TOKEN = "hf_testtokenNEVERinTHEcard0123456789"


@pytest.fixture
def offline_hub(monkeypatch):
    """Stand-ins for the calls that would reach the Hub; every call is recorded."""
    import datasets
    import huggingface_hub

    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    calls: list[tuple[str, tuple, dict]] = []

    def recorder(name):
        def call(self, *args, **kwargs):
            calls.append((name, args, kwargs))
            if name == "push_to_hub":
                calls[-1] = (name, args, dict(kwargs, splits={k: v.to_list() for k, v in self.items()}))
        return call

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", recorder("create_repo"))
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_file", recorder("upload_file"))
    monkeypatch.setattr(datasets.DatasetDict, "push_to_hub", recorder("push_to_hub"))
    return calls


@pytest.fixture
def labelled(tmp_path) -> str:
    """Real ProcessBench traces (with their GSM8K references), half judged by a (named) model."""
    mapper = Mapper({}, "processbench")
    records = []
    for i, line in enumerate((EXAMPLES / "processbench_gsm8k.jsonl").read_text().splitlines()[30:60]):
        record = mapper(json.loads(line))
        if i % 2:
            n, first = len(record["steps"]), record["meta"]["label"]
            labels = [1.0] * n if first < 0 else [1.0] * first + [0.0] + [None] * (n - first - 1)
            set_feedback(record, "step_labels", {
                "method": "judge", "labels": labels, "first_error_step": first, "details": {},
                "provenance": provenance("step_labels", model="openai/gpt-4o-mini", backend="openai",
                                         template="label_processbench", template_text="the judge's template",
                                         params={"method": "judge"})})
        records.append(record)
    path = tmp_path / "labelled.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def test_card_says_what_the_data_is(rubricate, labelled, tmp_path):
    card_path = tmp_path / "README.md"
    result = rubricate("export", labelled, "--to", "trl-stepwise", "-o", str(tmp_path / "out.jsonl"),
                       "--test-size", "5", "--card", str(card_path), "--source", "my-traces=CC-BY-4.0")
    assert result.code == 0, result.stderr
    card = card_path.read_text()
    meta = front_matter(card)
    assert meta["tags"][:2] == ["rubricate", "trl-stepwise"]
    assert set(meta["source_datasets"]) == {"Qwen/ProcessBench", "openai/gsm8k", "my-traces"}
    assert meta["license"] == "other"  # the sources' licenses differ
    assert meta["size_categories"] == ["n<1K"]
    train = sum(1 for _ in open(tmp_path / "out.train.jsonl"))
    test = sum(1 for _ in open(tmp_path / "out.test.jsonl"))
    assert (train, test) != (0, 0) and train + test == 30
    assert f"| train | {train} |" in card and f"| test | {test} |" in card
    rows = [json.loads(line) for name in ("train", "test") for line in open(tmp_path / f"out.{name}.jsonl")]
    good = sum(v for r in rows for v in r["labels"])
    bad = sum(not v for r in rows for v in r["labels"])
    assert f"step labels: good (true) {good}, bad (false) {bad}" in card
    assert "Rows per record: 1 row: 30." in card
    # who made the feedback, with which template
    from rubricate.records import template_hash

    assert f"| step_labels | step_labels | openai/gpt-4o-mini | label_processbench | " \
           f"{template_hash('the judge' + chr(39) + 's template')} |" in card
    # the exact command, sources with licenses, papers to cite
    assert f"rubricate export {labelled} --to trl-stepwise --output {tmp_path / 'out.jsonl'} --test-size 5 " \
           f"--source my-traces=CC-BY-4.0 --card {card_path}\n" in card
    assert "ProcessBench, github.com/QwenLM/ProcessBench (license: apache-2.0)" in card
    assert "(license: cc-by-4.0)" in card
    assert "Let's Verify Step by Step. arXiv:2305.20050" in card
    assert "Solving math word problems with process- and outcome-based feedback" in card


def test_push_plan(rubricate, labelled, offline_hub, tmp_path):
    result = rubricate("export", labelled, "--to", "processbench", "--push-to-hub", "someone/pb-judged",
                       "--private", "--test-size", "0.2")
    assert result.code == 0, result.stderr
    assert "pushed to https://huggingface.co/datasets/someone/pb-judged" in result.stderr
    assert [c[0] for c in offline_hub] == ["create_repo", "upload_file", "push_to_hub"]
    _, args, kwargs = offline_hub[0]
    assert args == ("someone/pb-judged",) and kwargs == {"repo_type": "dataset", "private": True, "exist_ok": True}
    _, _, upload = offline_hub[1]
    assert upload["path_in_repo"] == "README.md" and upload["repo_id"] == "someone/pb-judged"
    assert upload["repo_type"] == "dataset"
    card = upload["path_or_fileobj"].decode()
    assert TOKEN not in card
    meta = front_matter(card)
    assert meta["pretty_name"] == "pb-judged" and "processbench" in meta["tags"]
    _, args, push = offline_hub[2]
    assert args == ("someone/pb-judged",)
    assert push["private"] is True and push["token"] == TOKEN
    splits = push["splits"]
    assert set(splits) == {"train", "test"} and len(splits["train"]) + len(splits["test"]) == 30
    assert len(splits["test"]) == 6
    assert f"| train | {len(splits['train'])} |" in card and "| test | 6 |" in card
    assert set(splits["train"][0]) == {"id", "generator", "problem", "steps", "final_answer_correct", "label"}
    assert "Zheng et al., 2024. ProcessBench" in card
    assert "labels: has an error" in card
    # no file was written: the Hub was the only output
    assert not list(tmp_path.glob("*.jsonl*")) or all(p.name == "labelled.jsonl" for p in tmp_path.glob("*.jsonl*"))


def test_push_needs_a_token(rubricate, labelled, offline_hub, monkeypatch):
    import huggingface_hub

    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    result = rubricate("export", labelled, "--to", "processbench", "--push-to-hub", "someone/x")
    assert result.code == 2
    assert "needs a Hugging Face token" in result.stderr and "HF_TOKEN" in result.stderr
    assert offline_hub == []


def test_push_uses_the_login_token(rubricate, labelled, offline_hub, monkeypatch):
    import huggingface_hub

    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: "hf_fromlogin")
    assert rubricate("export", labelled, "--to", "processbench", "--push-to-hub", "someone/x").code == 0
    assert offline_hub[-1][2]["token"] == "hf_fromlogin" and offline_hub[0][2]["private"] is False
    assert rubricate("export", labelled, "--to", "processbench", "--push-to-hub", "no-owner").code == 2


def test_label_distributions_agree_across_formats(rubricate, labelled, tmp_path):
    counts = {}
    for fmt, pattern in (("trl-stepwise", r"good \(true\) (\d+), bad \(false\) (\d+)"),
                         ("math-shepherd", r"step labels: \+ (\d+), - (\d+)"),
                         ("openrlhf-prm", r"step labels: \+ (\d+), - (\d+)")):
        card = tmp_path / f"{fmt}.md"
        assert rubricate("export", labelled, "--to", fmt, "-o", str(tmp_path / f"{fmt}.jsonl"),
                         "--card", str(card)).code == 0
        import re

        counts[fmt] = tuple(int(x) for x in re.search(pattern, card.read_text()).groups())
    assert len(set(counts.values())) == 1 and sum(counts["trl-stepwise"]) > 30
    assert rubricate("export", labelled, "--to", "processbench", "--private").code == 2
