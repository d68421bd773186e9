"""Outputs: JSONL on stdout, or a file (`.jsonl`, `.jsonl.gz`, `.parquet`) written atomically.

A file is written under a temporary name in the same folder and renamed over the final name only
when the run commits, so a failed, interrupted or killed run never leaves a half-written file under
the name a user (or the next command in a pipeline) will read.
"""

from __future__ import annotations

import gzip
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import IO, Any

from rubricate.errors import UsageError

SUFFIXES = (".jsonl", ".jsonl.gz", ".parquet", ".json")


def dumps(record: dict) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


class Sink:
    """Where records go. `commit()` makes the output visible; `abort()` leaves nothing behind."""

    def __init__(self, path: str | None, *, fmt: str | None = None):
        self.path = None if path in (None, "-") else Path(path)
        self.format = fmt or _format_of(self.path)
        self.count = 0
        self._tmp: Path | None = None
        self._fh: IO[str] | None = None
        self._rows: list[dict] | None = None
        if self.path is None:
            if self.format == "parquet":
                raise UsageError("Parquet output needs a file: add -o FILE.parquet")
            self._fh = sys.stdout
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        self._tmp = Path(tmp)
        if self.format == "parquet":
            os.close(fd)
            self._rows = []  # pyarrow needs the whole column set to infer one schema
        elif self.format == "jsonl.gz":
            self._fh = gzip.open(os.fdopen(fd, "wb"), "wt", encoding="utf-8")  # type: ignore[assignment]
        else:
            self._fh = os.fdopen(fd, "w", encoding="utf-8")

    def write(self, record: dict) -> None:
        self.count += 1
        if self._rows is not None:
            self._rows.append(record)
        else:
            assert self._fh is not None
            self._fh.write(dumps(record))
            self._fh.write("\n")

    def commit(self) -> None:
        if self.path is None:
            sys.stdout.flush()
            return
        if self._rows is not None:
            _write_parquet(self._rows, self._tmp)  # type: ignore[arg-type]
        else:
            assert self._fh is not None
            self._fh.flush()
            if hasattr(self._fh, "fileno") and self.format != "jsonl.gz":
                os.fsync(self._fh.fileno())
            self._fh.close()
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self._tmp, 0o666 & ~umask)  # mkstemp's 0600 is for the temporary name only  # type: ignore[arg-type]
        os.replace(self._tmp, self.path)  # type: ignore[arg-type]
        self._tmp = None

    def abort(self) -> None:
        if self.path is None:
            try:
                sys.stdout.flush()
            except (BrokenPipeError, ValueError):
                pass
            return
        if self._fh is not None and not self._fh.closed:
            self._fh.close()
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
            self._tmp = None

    def __enter__(self) -> "Sink":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


def _format_of(path: Path | None) -> str:
    if path is None:
        return "jsonl"
    name = path.name
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith(".gz"):
        return "jsonl.gz"
    if name.endswith((".jsonl", ".json", ".ndjson")):
        return "jsonl"
    raise UsageError(f"-o {path}: cannot tell the format from the name",
                     hint=f"Use one of: {', '.join(SUFFIXES)}")


# Free-form objects whose keys differ from record to record (and may be empty, which Parquet cannot
# store as a struct) are written as JSON text; the file's metadata names them so reading decodes them.
JSON_COLUMNS = ("meta", "feedback", "rubric")
PARQUET_META_KEY = b"rubricate.json_columns"


def _write_parquet(rows: list[dict], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    encoded = [{k: (json.dumps(v, ensure_ascii=False) if k in JSON_COLUMNS and v is not None else v)
                for k, v in row.items()} for row in rows]
    try:
        # pa.array infers one struct type over every row (from_pylist would look at the first only).
        table = pa.Table.from_struct_array(pa.array(encoded)) if encoded else pa.table({})
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise UsageError(f"cannot write Parquet: the records' fields do not share one type ({exc})",
                         hint="Write JSONL instead (-o FILE.jsonl): it keeps any mix of types.") from exc
    used = [c for c in JSON_COLUMNS if c in table.column_names]
    table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                           PARQUET_META_KEY: json.dumps(used).encode()})
    pq.write_table(table, path)
