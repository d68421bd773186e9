"""`--push-to-hub OWNER/NAME`: the exported splits go to the Hugging Face Hub through `datasets`, with a
generated dataset card.

The card (README.md with YAML metadata, as the Hub's dataset cards are) says what the data is, how
many rows each split has, the label and verdict distributions, which models and templates (with
their hashes) generated the feedback, the exact rubricate command, the source datasets and their
licenses, and the papers to cite for the format. It is uploaded first; `datasets`' push_to_hub then
adds its own `dataset_info` and `configs` to that card's YAML and keeps the rest.

The token comes from `HF_TOKEN` or the user's `hf auth login`, is handed to huggingface_hub and
datasets only, and never appears in the card.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from rubricate import __version__
from rubricate.errors import UsageError

# What the presets read, and under which license it is published.
KNOWN_SOURCES: dict[str, tuple[str, str, str]] = {
    "gsm8k": ("openai/gsm8k", "mit", "GSM8K, github.com/openai/grade-school-math, (c) 2021 OpenAI"),
    "math": ("hendrycks/competition_math", "mit", "MATH, github.com/hendrycks/math (MATH-500: openai/prm800k's split)"),
    "processbench": ("Qwen/ProcessBench", "apache-2.0", "ProcessBench, github.com/QwenLM/ProcessBench"),
    "prm800k": ("openai/prm800k", "mit", "PRM800K, github.com/openai/prm800k"),
    "math-shepherd": ("peiyi9979/Math-Shepherd", "unknown",
                      "Math-Shepherd, huggingface.co/datasets/peiyi9979/Math-Shepherd (no license stated there)"),
}
PRESET_SOURCES = {"gsm8k": "gsm8k", "math": "math", "processbench": "processbench", "prm800k": "prm800k",
                  "prm800k-neutral-good": "prm800k", "math-shepherd": "math-shepherd"}


def detect_sources(record: dict) -> set[str]:
    """Public datasets a record visibly comes from (besides the --preset it was read with)."""
    found = set()
    meta = record.get("meta") if isinstance(record.get("meta"), dict) else {}
    if isinstance(meta.get("label"), int) and "generator" in meta and "final_answer_correct" in meta:
        found.add("processbench")
    reference = record.get("reference") if isinstance(record.get("reference"), dict) else {}
    solution = reference.get("solution")
    if isinstance(solution, str) and "\n#### " in solution:
        found.add("gsm8k")
    if isinstance(record.get("id"), str) and record["id"].startswith("test/") and record["id"].endswith(".json"):
        found.add("math")
    feedback = record.get("feedback") if isinstance(record.get("feedback"), dict) else {}
    imported = feedback.get("source_labels")
    if isinstance(imported, dict) and imported.get("method") in ("prm800k", "math-shepherd"):
        found.add(imported["method"])
    return found


@dataclass
class Facts:
    """What the card reports, gathered while exporting."""

    format: str
    records: int = 0
    rows_per_record: Counter = field(default_factory=Counter)
    rejected: Counter = field(default_factory=Counter)  # reason -> records
    outcome: Counter = field(default_factory=Counter)
    critique_verdicts: Counter = field(default_factory=Counter)
    generators: set = field(default_factory=set)  # (feedback kind, generator, model, template, template hash)
    sources: set = field(default_factory=set)

    def add_record(self, record: dict, rows: int | None, reason: str | None = None) -> None:
        self.records += 1
        if reason is not None:
            self.rejected[reason.split(":")[0].split("(")[0].strip()[:80]] += 1
        self.rows_per_record[rows or 0] += 1
        self.sources |= detect_sources(record)
        feedback = record.get("feedback") if isinstance(record.get("feedback"), dict) else {}
        out = feedback.get("outcome")
        if isinstance(out, dict):
            self.outcome[{True: "correct", False: "incorrect"}.get(out.get("correct"), "undecided")] += 1
        crit = feedback.get("critique")
        if isinstance(crit, dict):
            self.critique_verdicts[str(crit.get("verdict") or "none")] += 1
        for kind, entry in feedback.items():
            prov = entry.get("provenance") if isinstance(entry, dict) else None
            if isinstance(prov, dict) and (prov.get("model") or prov.get("template_hash")):
                self.generators.add((kind, prov.get("generator"), prov.get("model"), prov.get("template"),
                                     prov.get("template_hash")))


def label_distribution(fmt: str, rows: list[dict]) -> dict[str, Any]:
    """Per format, the distribution of what it trains on."""
    if fmt == "trl-stepwise":
        labels = Counter(bool(v) for r in rows for v in r["labels"])
        return {"step labels": {"good (true)": labels[True], "bad (false)": labels[False]}}
    if fmt == "math-shepherd":
        marks = Counter(r["label"][i] for r in rows for i, ch in enumerate(r["input"].replace("ки", "\0"))
                        if ch == "\0")
        return {"step labels": {"+": marks["+"], "-": marks["-"]}}
    if fmt == "openrlhf-prm":
        values = Counter(str(v) for r in rows for v in r["value"])
        return {"step labels": dict(sorted(values.items()))}
    if fmt == "processbench":
        labels = Counter("no error (-1)" if r["label"] == -1 else "has an error" for r in rows)
        return {"labels": dict(labels)}
    if fmt == "thinkprm-sft":
        verdict = Counter("correct" if r["prefix_label"] else "incorrect" for r in rows)
        return {"verified prefixes": dict(verdict)}
    return {}


def _size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                        (1_000_000, "100K<n<1M")):
        if n < limit:
            return name
    return "1M<n<10M"


def card(facts: Facts, splits: dict[str, list[dict]], *, command: str, extra_sources: list[str] = (),
         repo_id: str | None = None) -> str:
    import yaml

    from rubricate.formats.export import FORMATS, PAPERS

    fmt = FORMATS[facts.format]
    total = sum(len(rows) for rows in splits.values())
    known = [KNOWN_SOURCES[s] for s in sorted(facts.sources) if s in KNOWN_SOURCES]
    given = []
    for spec in extra_sources:
        name, _, license_ = spec.partition("=")
        given.append((name.strip(), (license_.strip() or "unknown").lower(), name.strip()))
    sources = known + given
    licenses = sorted({lic for _, lic, _ in sources})
    meta = {
        "pretty_name": repo_id.split("/")[-1] if repo_id else f"rubricate {facts.format} export",
        "license": licenses[0] if len(licenses) == 1 else "other",
        "tags": ["rubricate", facts.format, "math", "reasoning"],
        "task_categories": ["text-generation"],
        "size_categories": [_size_category(total)],
    }
    if sources:
        meta["source_datasets"] = [name for name, _, _ in sources]
    lines = ["---", yaml.safe_dump(meta, sort_keys=False, allow_unicode=True).strip(), "---", ""]
    lines += [f"# {meta['pretty_name']}", "",
              f"Training data in the **{facts.format}** format ({fmt.help}), for {fmt.consumer}, exported by "
              f"rubricate {__version__} from {facts.records} reasoning-trace records.", "",
              "## Splits", "", "| split | rows |", "| --- | --- |"]
    lines += [f"| {name} | {len(rows)} |" for name, rows in splits.items()]
    per_record = ", ".join(f"{k} row{'s' if k != 1 else ''}: {v}" for k, v in sorted(facts.rows_per_record.items()))
    lines += ["", f"Rows per record: {per_record}."]
    if facts.rejected:
        lines += ["", "Records that gave no row, by reason:", ""]
        lines += [f"- {reason}: {n}" for reason, n in facts.rejected.most_common()]
    dist = label_distribution(facts.format, [r for rows in splits.values() for r in rows])
    if dist or facts.outcome or facts.critique_verdicts:
        lines += ["", "## Labels and verdicts", ""]
        for title, counts in dist.items():
            lines.append(f"- {title}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        if facts.outcome:
            lines.append("- outcome of the responses (feedback.outcome): "
                         + ", ".join(f"{k} {v}" for k, v in sorted(facts.outcome.items())))
        if facts.critique_verdicts:
            lines.append("- critique verdicts (feedback.critique): "
                         + ", ".join(f"{k} {v}" for k, v in sorted(facts.critique_verdicts.items())))
    lines += ["", "## How it was made", "", "```bash", command, "```", ""]
    if facts.generators:
        lines += ["The feedback in these records, by the model and template that wrote it:", ""]
        lines += ["| feedback | generator | model | template | template hash |", "| --- | --- | --- | --- | --- |"]
        for kind, gen, model, tmpl, digest in sorted(facts.generators, key=lambda t: tuple(str(x) for x in t)):
            lines.append(f"| {kind} | {gen or ''} | {model or ''} | {tmpl or ''} | {digest or ''} |")
    else:
        lines.append("No model generated any feedback in these records.")
    lines += ["", "## Source data and licenses", ""]
    if sources:
        lines += [f"- {desc} (license: {lic})" for _, lic, desc in sources]
        lines += ["", "Respect each source's license; this card's `license` is theirs when they share one."]
    else:
        lines.append("Not recorded: name the inputs with `--source NAME=LICENSE`.")
    lines += ["", "## Cite", ""]
    lines += [f"- {PAPERS[key]}" for key in fmt.papers]
    return "\n".join(lines) + "\n"


def token() -> str:
    value = os.environ.get("HF_TOKEN")
    if not value:
        try:
            from huggingface_hub import get_token

            value = get_token()
        except ImportError:  # pragma: no cover - datasets depends on huggingface_hub
            value = None
    if not value:
        raise UsageError("--push-to-hub needs a Hugging Face token",
                         hint="Set HF_TOKEN, or log in once with `hf auth login`.")
    return value


def check_repo_id(repo_id: str) -> None:
    owner, _, name = repo_id.partition("/")
    if not owner or not name or "/" in name:
        raise UsageError(f"--push-to-hub {repo_id}: give OWNER/NAME", hint="For example --push-to-hub me/gsm8k-srl")


def push(splits: dict[str, list[dict]], repo_id: str, card_text: str, *, private: bool, token: str,
         message: str) -> None:
    """Create the dataset repo, upload the card, then the splits through datasets' push_to_hub."""
    from huggingface_hub import HfApi

    from rubricate.formats.export.output import dataset_dict

    if token in card_text:
        raise UsageError("refusing to push: the dataset card would contain the token")
    check_repo_id(repo_id)
    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    api.upload_file(path_or_fileobj=card_text.encode("utf-8"), path_in_repo="README.md", repo_id=repo_id,
                    repo_type="dataset", commit_message="Dataset card written by rubricate")
    dataset_dict(splits).push_to_hub(repo_id, private=private, token=token, commit_message=message)
