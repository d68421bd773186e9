"""Input sources: JSONL (a path, `-` for stdin, gzip), a JSON array, Parquet, a `datasets`
`save_to_disk` folder, or `hf:owner/name`.

Each yields `Item`s: one per input record, with where it came from and either the parsed object or
why it could not be parsed, so the pipeline can reject a bad line and go on. JSONL and Parquet
stream with constant memory; `datasets` is imported only for the sources that need it.
"""

from __future__ import annotations

import gzip
import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Iterator

from rubricate.errors import InputError, UsageError

STDIN = "<stdin>"


@dataclass(slots=True)
class Item:
    source: str
    line: int | None  # 1-based line of the record's first character, when the source has lines
    index: int  # 1-based position among the source's records
    value: Any = None
    raw: str | None = None  # the record's text as read, for the rejects file
    error: str | None = None  # why the record could not be parsed

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}" if self.line is not None else f"{self.source}:record {self.index}"


def read_items(spec: str | None, *, split: str | None = None) -> Iterator[Item]:
    """Every record of the input `spec` (None or '-' for stdin), in order."""
    if spec is None or spec == "-":
        yield from _read_stream(sys.stdin.buffer, STDIN)
        return
    if spec.startswith("hf:"):
        yield from _read_hub(spec[3:], split)
        return
    path = Path(spec)
    if not path.exists():
        raise InputError(f"{spec}: no such file or folder")
    if path.is_dir():
        yield from _read_saved_dataset(path, split)
    elif path.name.endswith(".parquet"):
        yield from _read_parquet(path)
    else:
        with open(path, "rb") as fh:
            yield from _read_stream(fh, spec)


def _read_stream(fh: BinaryIO, source: str) -> Iterator[Item]:
    buffered = fh if hasattr(fh, "peek") else io.BufferedReader(fh)  # type: ignore[arg-type]
    if buffered.peek(2)[:2] == b"\x1f\x8b":
        buffered = io.BufferedReader(gzip.GzipFile(fileobj=buffered))  # type: ignore[arg-type]
    lineno = 0
    index = 0
    try:
        # Bytes, decoded line by line: one bad line is one reject, at its own line number.
        for data in buffered:
            lineno += 1
            try:
                line = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                index += 1
                yield Item(source, lineno, index, raw=data.decode("utf-8", "replace").rstrip("\r\n"),
                           error=f"not UTF-8 text ({exc.reason} at byte {exc.start})")
                continue
            stripped = line.strip()
            if not stripped:
                continue
            if index == 0 and stripped.startswith("["):
                # A JSON array, not JSONL: it has to be parsed whole.
                rest = buffered.read()
                try:
                    text = "\n" * (lineno - 1) + line + rest.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise InputError(f"{source}: not UTF-8 text ({exc.reason})") from exc
                yield from _read_array(text, source)
                return
            index += 1
            raw = line.rstrip("\r\n")
            try:
                value = json.loads(stripped)
            except json.JSONDecodeError as exc:
                yield Item(source, lineno, index, raw=raw, error=f"invalid JSON ({exc.msg} at column {exc.colno})")
                continue
            if isinstance(value, dict):
                yield Item(source, lineno, index, value=value, raw=raw)
            else:
                yield Item(source, lineno, index, raw=raw, error=f"expected a JSON object, got {_json_type(value)}")
    except (OSError, EOFError) as exc:  # a truncated or corrupt gzip stream
        raise InputError(f"{source}:{lineno + 1}: cannot read ({exc})") from exc


def _read_array(text: str, source: str) -> Iterator[Item]:
    """Walk a JSON array element by element so each record keeps its line number."""
    decoder = json.JSONDecoder()
    pos = text.index("[") + 1
    index = 0
    n = len(text)

    def skip_ws(p: int) -> int:
        while p < n and text[p] in " \t\r\n":
            p += 1
        return p

    counted = [0, 1]  # (offset, line at that offset): lines are counted once, front to back

    def line_of(p: int) -> int:
        offset, line = counted
        line += text.count("\n", offset, p) if p >= offset else -text.count("\n", p, offset)
        counted[:] = [p, line]
        return line

    pos = skip_ws(pos)
    if pos < n and text[pos] == "]":
        return
    while True:
        pos = skip_ws(pos)
        index += 1
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise InputError(f"{source}:{line_of(exc.pos)}: invalid JSON array ({exc.msg} at column {exc.colno})",
                             hint="A JSON array must parse as a whole; JSONL can skip a bad line.") from exc
        raw = text[pos:end]
        if isinstance(value, dict):
            yield Item(source, line_of(pos), index, value=value, raw=raw)
        else:
            yield Item(source, line_of(pos), index, raw=raw,
                       error=f"expected a JSON object, got {_json_type(value)}")
        pos = skip_ws(end)
        if pos < n and text[pos] == ",":
            pos += 1
            continue
        if pos < n and text[pos] == "]":
            if skip_ws(pos + 1) != n:
                raise InputError(f"{source}:{line_of(pos)}: text after the end of the JSON array")
            return
        raise InputError(f"{source}:{line_of(pos)}: invalid JSON array (expected ',' or ']')")


def _read_parquet(path: Path) -> Iterator[Item]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise InputError(f"{path}: not a readable Parquet file ({exc})") from exc
    # A file rubricate wrote: decode its JSON columns, and drop the nulls Parquet put in for
    # fields a record did not have.
    marker = (pf.schema_arrow.metadata or {}).get(b"rubricate.json_columns")
    json_columns = set(json.loads(marker)) if marker else None
    index = 0
    for batch in pf.iter_batches(batch_size=1024):
        for row in batch.to_pylist():
            index += 1
            if json_columns is not None:
                row = {k: (json.loads(v) if k in json_columns and isinstance(v, str) else v)
                       for k, v in row.items() if v is not None}
            yield Item(str(path), None, index, value=row)


def _read_saved_dataset(path: Path, split: str | None) -> Iterator[Item]:
    if not any((path / marker).exists() for marker in ("dataset_dict.json", "state.json", "dataset_info.json")):
        raise InputError(f"{path}: a folder, but not one written by datasets' save_to_disk",
                         hint="Pass a JSONL, JSON or Parquet file, or a save_to_disk folder.")
    from datasets import DatasetDict, load_from_disk

    ds = load_from_disk(str(path))
    if isinstance(ds, DatasetDict):
        ds = _pick_split(ds, split, str(path))
    yield from _dataset_items(ds, str(path))


def _read_hub(name: str, split: str | None) -> Iterator[Item]:
    from datasets import load_dataset

    try:
        ds = load_dataset(name, split=split or "train", streaming=True)
    except Exception as exc:  # datasets raises many types: missing repo, no network, bad split
        raise InputError(f"hf:{name}: cannot load ({type(exc).__name__}: {exc})",
                         hint="Check the name and --split; offline, use a local file or save_to_disk folder.") from exc
    yield from _dataset_items(ds, f"hf:{name}")


def _pick_split(ds: Any, split: str | None, source: str) -> Any:
    if split is None:
        if len(ds) == 1:
            return next(iter(ds.values()))
        raise UsageError(f"{source} has splits {', '.join(ds)}: choose one with --split")
    if split not in ds:
        raise UsageError(f"{source} has no split {split!r} (it has {', '.join(ds)})")
    return ds[split]


def _dataset_items(ds: Any, source: str) -> Iterator[Item]:
    for index, row in enumerate(ds, 1):
        yield Item(source, None, index, value=dict(row))


def _json_type(value: Any) -> str:
    return {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean",
            type(None): "null"}.get(type(value), type(value).__name__)
