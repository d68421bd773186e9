"""The train and held-out splits of an export, wherever `rubricate export` put them, and a check that
their columns are the ones the method reads.

DATA may be:
- a `datasets` save_to_disk folder (export's default for a folder): its `train` split, and `test` (or
  `heldout`) as the held-out split;
- a folder of split files (`export --format jsonl|parquet`): `train.<ext>` and `test.<ext>`;
- a file (`.jsonl`, `.jsonl.gz`, `.json`, `.parquet`): a `NAME.train.<ext>` file finds its held-out
  `NAME.test.<ext>` beside it (how export names split files), and `NAME.<ext>` that does not exist
  finds `NAME.train.<ext>`;
- `hf:owner/name`: a Hub dataset's `train` and `test` splits.
`--eval-data` names the held-out split explicitly (any of the above; its first split is used).
"""

from __future__ import annotations

from pathlib import Path

from rubricate.errors import UsageError

SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".parquet")
HELD_OUT = ("test", "heldout", "validation")

# The columns each method reads, and the export that writes them.
COLUMNS = {
    "prm": ({"prompt", "completions", "labels"}, "trl-stepwise"),
    "srl": ({"prompt", "expert_action"}, "srl"),
    "critique-grpo": ({"prompt"}, "critique-grpo"),
    "sft": (set(), "trl-sft or thinkprm-sft"),
}


def _suffix(name: str) -> str | None:
    return next((s for s in SUFFIXES if name.endswith(s)), None)


def _load_file(path: Path):
    from datasets import load_dataset

    suffix = _suffix(path.name)
    if suffix is None:
        raise UsageError(f"{path}: not a .jsonl, .jsonl.gz, .json or .parquet file")
    builder = "parquet" if suffix == ".parquet" else "json"
    return load_dataset(builder, data_files=str(path), split="train")


def _load_folder(path: Path) -> dict:
    from datasets import load_from_disk

    if (path / "dataset_dict.json").exists():
        return dict(load_from_disk(str(path)))
    if (path / "dataset_info.json").exists():
        return {"train": load_from_disk(str(path))}
    splits = {}
    for file in sorted(path.iterdir()):
        suffix = _suffix(file.name)
        if suffix and file.is_file():
            splits[file.name[: -len(suffix)]] = _load_file(file)
    if not splits:
        raise UsageError(f"{path}: holds neither a datasets folder nor split files (train.jsonl, train.parquet, ...)")
    return splits


def _load_any(spec: str) -> dict:
    if spec.startswith("hf:"):
        from datasets import load_dataset

        return dict(load_dataset(spec[3:]))
    path = Path(spec)
    if path.is_dir():
        return _load_folder(path)
    if path.is_file():
        splits = {"train": _load_file(path)}
        suffix = _suffix(path.name)
        stem = path.name[: -len(suffix)] if suffix else path.stem
        if stem.endswith(".train"):
            for name in HELD_OUT:
                sibling = path.with_name(f"{stem[: -len('.train')]}.{name}{suffix}")
                if sibling.is_file():
                    splits[name] = _load_file(sibling)
                    break
        return splits
    suffix = _suffix(path.name)
    if suffix:
        train = path.with_name(path.name[: -len(suffix)] + ".train" + suffix)
        if train.is_file():
            return _load_any(str(train))
    raise UsageError(f"{spec}: no such file or folder")


def load_splits(data: str, eval_data: str | None = None):
    """(train, held-out or None) as `datasets.Dataset`s."""
    splits = _load_any(data)
    train = splits.get("train")
    if train is None:
        others = [k for k in splits if k not in HELD_OUT]
        if len(others) != 1:
            raise UsageError(f"{data}: no `train` split (splits: {', '.join(splits)})")
        train = splits[others[0]]
    held = next((splits[k] for k in HELD_OUT if k in splits), None)
    if eval_data:
        chosen = _load_any(eval_data)
        held = next((chosen[k] for k in HELD_OUT if k in chosen), None) or next(iter(chosen.values()))
    if len(train) == 0:
        raise UsageError(f"{data}: the train split is empty")
    return train, held


def check_columns(method: str, dataset, where: str) -> None:
    needed, export = COLUMNS[method]
    have = set(dataset.column_names)
    if method == "sft":
        ok = {"prompt", "completion"} <= have or "messages" in have
        needed = {"prompt + completion", "or messages"}
    elif method == "critique-grpo":
        ok = "prompt" in have and ("solution" in have or "reward_model" in have)
        needed = {"prompt", "reward_model or solution"}
    else:
        ok = needed <= have
    if not ok:
        raise UsageError(f"{where}: `rubricate train {method}` reads the columns {', '.join(sorted(needed))}; "
                         f"this data has {', '.join(sorted(have)) or 'none'}",
                         hint=f"Write it with `rubricate export --to {export}`.")
