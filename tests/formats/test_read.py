import gzip
import json

import pytest

from helpers import write_jsonl
from rubricate.errors import InputError
from rubricate.formats.read import read_items


def test_jsonl_keeps_line_numbers_and_reports_bad_lines(tmp_path):
    path = write_jsonl(tmp_path / "in.jsonl", [{"a": 1}, "", "{bad", "[1, 2]", {"b": 2}])
    items = list(read_items(str(path)))
    assert [i.line for i in items] == [1, 3, 4, 5]
    assert items[0].value == {"a": 1} and items[0].error is None
    assert items[1].value is None and items[1].error.startswith("invalid JSON")
    assert items[1].raw == "{bad"
    assert items[2].error == "expected a JSON object, got an array"
    assert items[3].where == f"{path}:5"


def test_gzip_and_json_array_give_the_same_records(tmp_path):
    rows = [{"problem": "p1", "x": [1, 2]}, {"problem": "p2", "y": {"z": None}}]
    plain = write_jsonl(tmp_path / "in.jsonl", rows)
    gz = tmp_path / "in.jsonl.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    array = tmp_path / "in.json"
    array.write_text("\n  [\n" + ",\n".join(json.dumps(r, indent=1) for r in rows) + "\n]\n")
    for path in (plain, gz, array):
        assert [i.value for i in read_items(str(path))] == rows
    # Array elements keep the line where each one starts.
    assert [i.line for i in read_items(str(array))] == [3, 3 + len(json.dumps(rows[0], indent=1).splitlines())]


def test_broken_json_array_names_the_line(tmp_path):
    path = tmp_path / "in.json"
    path.write_text('[\n{"a": 1},\n{"a": \n]')
    with pytest.raises(InputError) as err:
        list(read_items(str(path)))
    assert f"{path}:4" in str(err.value)


def test_missing_file_and_non_utf8(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        list(read_items(str(tmp_path / "nope.jsonl")))
    bad = tmp_path / "latin1.jsonl"
    bad.write_bytes(b'{"a": "ok"}\n{"a": "caf\xe9"}\n{"a": "\xc3\xa9"}\n')
    items = list(read_items(str(bad)))
    assert [i.value for i in items] == [{"a": "ok"}, None, {"a": "\u00e9"}]
    assert items[1].line == 2 and items[1].error.startswith("not UTF-8")


def test_parquet_and_saved_dataset(tmp_path):
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"question": "q1", "answer": "1"}, {"question": "q2", "answer": "2"}]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "in.parquet")
    items = list(read_items(str(tmp_path / "in.parquet")))
    assert [i.value for i in items] == rows and items[1].where.endswith(":record 2")

    folder = tmp_path / "saved"
    datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)}).save_to_disk(str(folder))
    assert [i.value for i in read_items(str(folder), split="test")] == rows
    datasets.DatasetDict({"a": datasets.Dataset.from_list(rows), "b": datasets.Dataset.from_list(rows)}) \
        .save_to_disk(str(tmp_path / "two"))
    from rubricate.errors import UsageError
    with pytest.raises(UsageError, match="--split"):
        list(read_items(str(tmp_path / "two")))


def test_hf_source_loads_through_datasets(tmp_path, monkeypatch):
    # A local folder stands in for a hub repository: `load_dataset` takes both the same way.
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (tmp_path / "repo").mkdir()
    write_jsonl(tmp_path / "repo" / "train.jsonl", [{"problem": "p", "n": 1}])
    items = list(read_items(f"hf:{tmp_path / 'repo'}", split="train"))
    assert [i.value for i in items] == [{"problem": "p", "n": 1}]
    with pytest.raises(InputError, match="cannot load"):
        list(read_items("hf:nobody/does-not-exist-anywhere"))
