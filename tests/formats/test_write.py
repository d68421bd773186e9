import gzip
import json
import os

import pytest

from rubricate.errors import UsageError
from rubricate.formats.read import read_items
from rubricate.formats.write import Sink

ROWS = [
    {"id": "a", "problem": "p", "meta": {"x": 1}, "feedback": {"outcome": {"provenance": {"params": {}}}}},
    {"id": "b", "problem": "q", "steps": ["s1", "s2"], "meta": {"y": "z"}},
]


@pytest.mark.parametrize("name", ["out.jsonl", "out.jsonl.gz", "out.parquet"])
def test_round_trip_every_output_format(tmp_path, name):
    path = tmp_path / "sub" / name
    with Sink(str(path)) as sink:
        for row in ROWS:
            sink.write(row)
    assert [i.value for i in read_items(str(path))] == ROWS
    assert sink.count == 2
    # Only the final file is left: no temporary names.
    assert [p.name for p in path.parent.iterdir()] == [name]
    # The file gets the permissions any new file gets (umask), not the temporary file's 0600.
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_failed_run_leaves_nothing_under_the_final_name(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text("previous\n")
    with pytest.raises(RuntimeError):
        with Sink(str(path)) as sink:
            sink.write(ROWS[0])
            raise RuntimeError("boom")
    assert path.read_text() == "previous\n"
    assert list(tmp_path.iterdir()) == [path]


def test_gzip_output_is_gzip(tmp_path):
    path = tmp_path / "out.jsonl.gz"
    with Sink(str(path)) as sink:
        sink.write(ROWS[1])
    assert json.loads(gzip.decompress(path.read_bytes())) == ROWS[1]


def test_unknown_suffix_and_parquet_on_stdout_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="cannot tell the format"):
        Sink(str(tmp_path / "out.csv"))
    with pytest.raises(UsageError, match="Parquet output needs a file"):
        Sink(None, fmt="parquet")
