"""Splitting exported rows into train and held-out splits, and writing them: JSONL, Parquet, or a
`datasets` save_to_disk folder.

A held-out split never cuts a problem in two: rows are split by problem (the record's `group` when it
has one, else its problem text), so the SRL rows of one solution or the rollouts of one problem stay
on one side. The order is a seeded hash, the same on every machine.

Where rows go is told by `-o`'s form, or `--format`:
- `FILE.jsonl` / `FILE.jsonl.gz` / `FILE.parquet`: that file (one split), or `FILE.<split>.parquet`
  beside it for each split;
- a folder (`DIR/`, an existing folder, or a name without a suffix): `--format jsonl|parquet` writes
  `DIR/<split>.<ext>` (verl reads `train.parquet` and `test.parquet`), otherwise a `datasets`
  DatasetDict saved with save_to_disk;
- no `-o`: JSONL on stdout (one split).
Every file is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

from rubricate.errors import UsageError
from rubricate.formats.write import Sink

FORMATS = ("jsonl", "jsonl.gz", "parquet", "datasets")
_SUFFIX = {"jsonl": ".jsonl", "jsonl.gz": ".jsonl.gz", "parquet": ".parquet"}


def problem_key(record: dict) -> str:
    group = record.get("group")
    if group is not None and group != "":
        return f"group:{group}"
    return "problem:" + " ".join(str(record.get("problem") or record.get("id")).split())


def split_keys(keys: list[str], test_size: float | None, seed: int) -> set[str]:
    """The keys that go to the held-out split: a fraction (< 1) or a count of the distinct keys."""
    if not test_size:
        return set()
    unique = list(dict.fromkeys(keys))
    n = round(test_size * len(unique)) if test_size < 1 else int(test_size)
    if n >= len(unique):
        raise UsageError(f"--test-size {test_size:g} leaves nothing to train on: there are {len(unique)} problems")
    if n < 1:
        raise UsageError(f"--test-size {test_size:g} holds out no problem of {len(unique)}",
                         hint="Give a larger fraction or a count (--test-size 10).")
    order = sorted(unique, key=lambda k: hashlib.sha256(f"{seed}\0{k}".encode()).hexdigest())
    return set(order[:n])


def assign(rows: list[tuple[str, dict]], split: str, test_split: str, held_out: set[str]) -> dict[str, list[dict]]:
    """Rows by split, in input order; verl-style `extra_info` gets its `split` and `index` here."""
    out: dict[str, list[dict]] = {split: []}
    if held_out:
        out[test_split] = []
    for key, row in rows:
        name = test_split if key in held_out else split
        info = row.get("extra_info")
        if isinstance(info, dict) and "split" in info and "index" in info:
            info["split"] = name
            info["index"] = len(out[name])
        out[name].append(row)
    return out


def layout(output: str | None, fmt: str | None) -> tuple[str, str | None]:
    """(format, kind of target: 'file', 'dir' or None for stdout)."""
    if output in (None, "-"):
        if fmt in ("parquet", "datasets"):
            raise UsageError(f"--format {fmt} needs -o PATH")
        return fmt or "jsonl", None
    name = str(output)
    by_name = ("parquet" if name.endswith(".parquet") else "jsonl.gz" if name.endswith(".gz")
               else "jsonl" if name.endswith((".jsonl", ".json", ".ndjson")) else None)
    is_dir = name.endswith(("/", os.sep)) or Path(name).is_dir() or by_name is None
    if is_dir:
        return fmt or "datasets", "dir"
    if fmt == "datasets":
        raise UsageError(f"-o {name}: a datasets folder needs a folder name, not a file name")
    return fmt or by_name, "file"


def targets(output: str | None, fmt: str, kind: str | None, splits: list[str]) -> dict[str, str | None]:
    """Where each split's file goes (for datasets: the folder, the same for all)."""
    if kind is None:
        if len(splits) > 1:
            raise UsageError("a held-out split needs -o PATH: stdout holds one split")
        return {splits[0]: None}
    path = Path(str(output))
    if kind == "dir":
        if fmt == "datasets":
            return {s: str(path) for s in splits}
        return {s: str(path / f"{s}{_SUFFIX[fmt]}") for s in splits}
    if len(splits) == 1:
        return {splits[0]: str(path)}
    suffix = _SUFFIX[fmt]
    stem = path.name[: -len(suffix)] if path.name.endswith(suffix) else path.stem
    return {s: str(path.with_name(f"{stem}.{s}{suffix}")) for s in splits}


def write(splits: dict[str, list[dict]], output: str | None, fmt: str | None) -> list[str]:
    """Write every split; returns the paths written ('-' for stdout)."""
    fmt, kind = layout(output, fmt)
    where = targets(output, fmt, kind, list(splits))
    if fmt == "datasets":
        save_to_disk(splits, str(output))
        return [str(output)]
    written = []
    sinks = []
    try:
        for name, rows in splits.items():
            sink = Sink(where[name], fmt=fmt)
            sinks.append(sink)
            for row in rows:
                sink.write(row)
        for sink in sinks:
            sink.commit()
            written.append(str(sink.path) if sink.path else "-")
    except BaseException:
        for sink in sinks:
            sink.abort()
        raise
    return written


def dataset_dict(splits: dict[str, list[dict]]):
    import pyarrow as pa
    from datasets import Dataset, DatasetDict

    # One Arrow type over every row (as Parquet output infers it), not the first row's.
    return DatasetDict({name: Dataset(_table(rows, pa)) for name, rows in splits.items()})


def _table(rows: list[dict], pa):
    from datasets.table import InMemoryTable

    table = pa.Table.from_struct_array(pa.array(rows)) if rows else pa.table({})
    return InMemoryTable(table)


def save_to_disk(splits: dict[str, list[dict]], folder: str) -> None:
    target = Path(folder)
    if target.exists() and (not target.is_dir() or (any(target.iterdir()) and not
                                                     (target / "dataset_dict.json").exists())):
        raise UsageError(f"-o {folder}: exists and is not a datasets folder; not overwriting it")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    if not sys.stderr.isatty():
        from datasets.utils.logging import disable_progress_bar

        disable_progress_bar()  # tqdm bars are noise in a pipeline's or a CI log's stderr
    try:
        dataset_dict(splits).save_to_disk(str(tmp / "data"))
        if target.exists():
            old = tmp / "old"
            os.replace(target, old)
        os.replace(tmp / "data", target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
