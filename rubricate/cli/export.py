"""`export`: records -> the dataset a training framework reads (`--to FORMAT`), optionally split, written
as JSONL, Parquet or a `datasets` folder, and pushed to the Hugging Face Hub with a dataset card."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Optional

import typer

from rubricate.cli import options as o

# The names of rubricate.formats.export.EXPORTERS, spelled out so that starting the CLI does not import
# every exporter (a test keeps the two in step).
FORMAT_NAMES = ("critique-grpo", "srl", "trl-stepwise", "math-shepherd", "openrlhf-prm", "trl-grpo", "verl",
                "trl-sft", "trl-dpo", "thinkprm-sft", "processbench")
ExportFormat = Enum("ExportFormat", {name: name for name in FORMAT_NAMES}, type=str)  # type: ignore[misc]


class Layout(str, Enum):
    jsonl = "jsonl"
    jsonl_gz = "jsonl.gz"
    parquet = "parquet"
    datasets = "datasets"


class AfterError(str, Enum):
    keep = "keep"
    drop = "drop"
    bad = "bad"


class Unlabelled(str, Enum):
    drop = "drop"
    bad = "bad"
    good = "good"
    reject = "reject"


MAX_LISTED = 20


def export(
    ctx: typer.Context,
    input: o.Input = None,
    to: Annotated[ExportFormat, typer.Option(
        "--to", help="The format: critique-grpo and verl (verl parquet rows), srl (one row per expert step), "
                     "trl-stepwise, math-shepherd, openrlhf-prm, processbench (step labels), trl-grpo, trl-sft and "
                     "trl-dpo (TRL trainers), thinkprm-sft (judge chains).",
        show_default=False)] = ...,  # type: ignore[assignment]
    output: Annotated[Optional[str], typer.Option(
        "--output", "-o", help="FILE.jsonl, FILE.jsonl.gz, FILE.parquet, or a folder (a datasets save_to_disk "
                               "folder, or with --format jsonl|parquet one file per split). Default: stdout.",
        show_default=False)] = None,
    fmt: Annotated[Optional[Layout], typer.Option(
        "--format", help="How to write when -o's form does not say: jsonl, jsonl.gz, parquet, datasets.",
        show_default=False)] = None,
    split: Annotated[Optional[str], typer.Option(
        "--split", help="The input's split (datasets folder, hf:) and the exported split's name (default train).",
        show_default=False)] = None,
    test_size: Annotated[Optional[float], typer.Option(
        "--test-size", min=0, help="Hold out this fraction (< 1) or number of problems as a `test` split; a "
                                   "problem's rows never straddle the two.", show_default=False)] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the held-out split.")] = 0,
    threshold: Annotated[Optional[float], typer.Option(
        "--threshold", min=0, max=1, help="A step label >= this is a good step (soft labels become hard). "
                                          "Default 0.5; math-shepherd: any success.", show_default=False)] = None,
    after_error: Annotated[Optional[AfterError], typer.Option(
        "--after-error", help="Steps after the first bad one: keep their labels, drop them, or label them bad. "
                              "Default: keep.", show_default=False)] = None,
    unlabelled: Annotated[Optional[Unlabelled], typer.Option(
        "--unlabelled", help="A step without a label: drop it and the steps after it, label it bad or good, or "
                             "reject the record. Default: drop.", show_default=False)] = None,
    labels: Annotated[Optional[str], typer.Option(
        "--labels", help="Read step labels from feedback.NAME (or 'processbench' for meta.label). Default: "
                         "step_labels, else source_labels, else meta.label.", show_default=False)] = None,
    soft: Annotated[bool, typer.Option("--soft", help="openrlhf-prm: labels as numbers, not + / -.")] = False,
    instruction: Annotated[Optional[str], typer.Option(
        "--instruction", help="Text appended to each problem in the prompt ('' for none). Default: the "
                              "consumer's own (verl's per data source, Critique-GRPO's), none for TRL.",
        show_default=False)] = None,
    system: Annotated[Optional[str], typer.Option(
        "--system", help="A system turn for chat prompts ('' for none). Default: the consumer's own.",
        show_default=False)] = None,
    data_source: Annotated[Optional[str], typer.Option(
        "--data-source", help="verl/critique-grpo data_source (picks verl's reward). Default: openai/gsm8k for "
                              "GSM8K references, else DigitalLearningGmbH/MATH-lighteval.",
        show_default=False)] = None,
    dedupe: Annotated[bool, typer.Option(
        "--dedupe/--no-dedupe", help="Per-problem formats (verl, critique-grpo, trl-grpo): one row per problem "
                                     "even when several records (rollouts) share it.")] = True,
    push_to_hub: Annotated[Optional[str], typer.Option(
        "--push-to-hub", help="Push the splits to the Hugging Face Hub as OWNER/NAME, with a dataset card. "
                              "Token: HF_TOKEN or `hf auth login`.", show_default=False)] = None,
    private: Annotated[bool, typer.Option("--private", help="With --push-to-hub: a private dataset.")] = False,
    source: Annotated[Optional[list[str]], typer.Option(
        "--source", help="A source dataset for the card, NAME=LICENSE (repeatable); known presets are found "
                         "on their own.", show_default=False)] = None,
    card: Annotated[Optional[str], typer.Option(
        "--card", help="Also write the dataset card (README.md) to this file.", show_default=False)] = None,
    mapping: o.Map = None,
    preset: Annotated[Optional[str], typer.Option(
        "--preset", help="A public format: gsm8k, math, processbench, prm800k, prm800k-neutral-good, "
                         "math-shepherd.", show_default=False)] = None,
    on_error: o.OnErrorOpt = o.OnError.fail, rejects: o.Rejects = None, debug: o.Debug = False,
) -> None:
    """Write the records as a training dataset: verl/Critique-GRPO parquet, SRL, TRL, PRM formats, ProcessBench."""
    from rubricate.errors import InputError, UsageError
    from rubricate.formats import hub
    from rubricate.formats.export import EXPORTERS, FORMATS, ExportOptions, Unusable
    from rubricate.formats.export.output import assign, layout, problem_key, split_keys, targets, write
    from rubricate.formats.mapping import parse_map
    from rubricate.formats.presets import PRESETS
    from rubricate.formats.write import Sink
    from rubricate.pipeline import Options, Summary, read_records

    name = to.value
    spec = FORMATS[name]
    exporter = EXPORTERS[name]
    if preset is not None and preset not in PRESETS:
        raise UsageError(f"--preset: unknown preset {preset!r}", hint=f"Presets: {', '.join(PRESETS)}")
    if private and push_to_hub is None:
        raise UsageError("--private applies with --push-to-hub only")
    if soft and name != "openrlhf-prm":
        raise UsageError("--soft applies to --to openrlhf-prm only")
    fmt_name, kind = layout(output, fmt.value if fmt else None)
    split_name = split or "train"
    test_name = "test" if split_name != "test" else "heldout"
    if output is not None or push_to_hub is None:  # usage errors before any work
        targets(output, fmt_name, kind, [split_name] + ([test_name] if test_size else []))
    opts = ExportOptions(policy=spec.policy.merged(threshold, after_error.value if after_error else None,
                                                   unlabelled.value if unlabelled else None),
                         labels=labels, instruction=instruction, system=system, data_source=data_source, soft=soft)
    io = Options(input=input, output=output, mapping=parse_map(mapping), preset=preset, split=split,
                 on_error=on_error.value, rejects=rejects)
    if rejects is None and output not in (None, "-") and kind == "file":
        rejects_path = f"{output}.rejects.jsonl"
    elif rejects is None and output not in (None, "-"):
        rejects_path = f"{str(output).rstrip('/')}.rejects.jsonl"
    else:
        rejects_path = rejects
    if on_error is o.OnError.skip and rejects_path is None:
        raise UsageError("--on-error skip needs --rejects FILE when writing to stdout",
                         hint="Every input record must end in the output or the rejects.")
    hub_token = None
    if push_to_hub is not None:  # before any work: a missing token or a bad name fails at once
        hub.check_repo_id(push_to_hub)
        hub_token = hub.token()
    facts = hub.Facts(format=name)
    if preset in hub.PRESET_SOURCES:
        facts.sources.add(hub.PRESET_SOURCES[preset])
    summary = Summary(rejects_path=rejects_path)
    reject_sink = Sink(rejects_path) if rejects_path else None
    rows: list[tuple[str, dict]] = []
    unusable: list[tuple[str, str]] = []
    seen: set[str] = set()
    duplicates = 0
    try:
        for record in read_records(io, summary, reject_sink if on_error is o.OnError.skip else None):
            key = problem_key(record)
            if spec.per_problem and dedupe and key in seen:
                duplicates += 1
                facts.add_record(record, 0)
                continue
            try:
                produced = exporter(record, opts)
            except Unusable as exc:
                unusable.append((str(record.get("id")), exc.reason))
                facts.add_record(record, 0, exc.reason)
                if reject_sink is not None:
                    reject_sink.write({"source": "export", "format": name, "id": record.get("id"),
                                       "reason": exc.reason, "record": record})
                continue
            seen.add(key)
            facts.add_record(record, len(produced))
            rows.extend((key, row) for row in produced)
        if not rows:
            raise InputError(f"no record gave a {name} row ({summary.read} read, {len(unusable)} unusable"
                             + (f"; first: {unusable[0][1]}" if unusable else "") + ")",
                             hint=f"{name} needs: {spec.help}.")
        held_out = split_keys([k for k, _ in rows], test_size, seed)
        splits = assign(rows, split_name, test_name, held_out)
        written = write(splits, output, fmt_name) if (output is not None or push_to_hub is None) else []
        if reject_sink is not None:
            if summary.rejected or unusable:
                reject_sink.commit()
            else:
                reject_sink.abort()
    except BaseException:
        if reject_sink is not None:
            reject_sink.abort()
        raise
    if card is not None or push_to_hub is not None:
        card_text = hub.card(facts, splits, command=_command(ctx), extra_sources=source or [], repo_id=push_to_hub)
        if card is not None:
            _write_text(card, card_text)
        if push_to_hub is not None:
            hub.push(splits, push_to_hub, card_text, private=private, token=hub_token,  # type: ignore[arg-type]
                     message=f"rubricate export --to {name}")
    _report(name, summary, facts, splits, written, unusable, duplicates, rejects_path, push_to_hub)


def _command(ctx: typer.Context) -> str:
    """The command as given: every parameter set on the command line, in the command's own order."""
    import shlex

    words = [ctx.find_root().info_name or "rubricate", ctx.info_name or "export"]
    for param in ctx.command.params:
        source = ctx.get_parameter_source(param.name)
        if getattr(source, "name", None) not in ("COMMANDLINE", "ENVIRONMENT"):
            continue
        value = ctx.params.get(param.name)
        for item in value if isinstance(value, (list, tuple)) else [value]:
            item = item.value if isinstance(item, Enum) else item
            if isinstance(item, float) and item.is_integer():
                item = int(item)
            if param.param_type_name == "argument":
                words.append(str(item))
            elif getattr(param, "is_flag", False):
                words.append((param.opts if item else (param.secondary_opts or param.opts))[0])
            else:
                words += [param.opts[0], str(item)]
    return " ".join(shlex.quote(w) for w in words)


def _write_text(path: str, text: str) -> None:
    import os
    import tempfile
    from pathlib import Path

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, target)


def _report(name, summary, facts, splits, written, unusable, duplicates, rejects_path, pushed) -> None:
    total = sum(len(r) for r in splits.values())
    per = ", ".join(f"{k}: {v}" for k, v in sorted(facts.rows_per_record.items()))
    parts = [f"rubricate export --to {name}: {summary.read} records -> {total} rows "
             f"(records by rows given: {per})",
             "splits: " + ", ".join(f"{k} {len(v)}" for k, v in splits.items())]
    if written:
        parts.append("written: " + ", ".join(written))
    if pushed:
        parts.append(f"pushed to https://huggingface.co/datasets/{pushed}")
    typer.echo("; ".join(parts), err=True)
    if duplicates:
        typer.secho(f"rubricate: {duplicates} records repeat a problem already exported (one row per problem; "
                    "--no-dedupe keeps them)", fg="yellow", err=True)
    if summary.rejected:
        typer.secho(f"rubricate: {summary.rejected} of {summary.read} records rejected as bad input -> "
                    f"{rejects_path}", fg="yellow", err=True)
    if unusable:
        where = f" -> {rejects_path}" if rejects_path else ""
        typer.secho(f"rubricate: {len(unusable)} records lack what {name} needs{where}:", fg="yellow", err=True)
        for record_id, reason in unusable[:MAX_LISTED]:
            typer.secho(f"  {record_id}: {reason}", fg="yellow", err=True)
        if len(unusable) > MAX_LISTED:
            typer.secho(f"  ... and {len(unusable) - MAX_LISTED} more" + ("" if rejects_path else
                        " (--rejects FILE lists them all)"), fg="yellow", err=True)
