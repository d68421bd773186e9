import json

import pytest

from helpers import write_jsonl
from rubricate.errors import InputError, UsageError
from rubricate.pipeline import Options, each, run


def _tag(record):
    record.setdefault("meta", {})["seen"] = True
    return record


def test_every_record_ends_in_output_or_rejects(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [{"problem": "a"}, "{oops", {"question": "no problem"},
                                              {"problem": "b", "response": "r"}])
    out = tmp_path / "out.jsonl"
    summary = run(Options(input=str(src), output=str(out), on_error="skip"), each(_tag))
    written = [json.loads(line) for line in out.read_text().splitlines()]
    rejects = [json.loads(line) for line in (tmp_path / "out.jsonl.rejects.jsonl").read_text().splitlines()]
    assert [r["problem"] for r in written] == ["a", "b"]
    assert all(r["meta"]["seen"] for r in written)
    assert [(r["line"], r["field"]) for r in rejects] == [(2, None), (3, "problem")]
    assert rejects[0]["raw"] == "{oops" and rejects[0]["reason"].startswith("invalid JSON")
    assert summary.read == 4 and summary.written == 2 and summary.rejected == 2


def test_fail_mode_leaves_no_output(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [{"problem": "a"}, {"problem": 3}])
    out = tmp_path / "out.jsonl"
    with pytest.raises(InputError) as err:
        run(Options(input=str(src), output=str(out)), each(_tag))
    assert f"{src}:2: field problem" in str(err.value)
    assert not out.exists() and list(tmp_path.iterdir()) == [src]


def test_requires_names_the_missing_field(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [{"id": "x1", "problem": "a"}])
    with pytest.raises(InputError) as err:
        run(Options(input=str(src), output=str(tmp_path / "o.jsonl")), each(_tag), requires=("response",))
    assert err.value.field == "response" and "x1" in str(err.value) and f"{src}:1" in str(err.value)


def test_skip_to_stdout_needs_a_rejects_file(tmp_path):
    with pytest.raises(UsageError, match="--rejects"):
        run(Options(input=str(tmp_path / "x.jsonl"), on_error="skip"), each(_tag))
