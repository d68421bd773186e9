"""Options every record command shares, declared once."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Callable, Iterator, Optional

import typer

if TYPE_CHECKING:
    from rubricate.pipeline import Options, Summary


class OnError(str, Enum):
    fail = "fail"
    skip = "skip"


class PresetName(str, Enum):
    gsm8k = "gsm8k"
    math = "math"
    processbench = "processbench"


class OutputFormat(str, Enum):
    jsonl = "jsonl"
    jsonl_gz = "jsonl.gz"
    parquet = "parquet"


Input = Annotated[Optional[str], typer.Argument(
    help="JSONL (.gz ok), JSON array, Parquet, a datasets save_to_disk folder, or hf:owner/name. "
         "Default or '-': stdin.", show_default=False)]
Output = Annotated[Optional[str], typer.Option(
    "--output", "-o", help="Write here (.jsonl, .jsonl.gz, .parquet) atomically instead of stdout.",
    show_default=False)]
Format = Annotated[Optional[OutputFormat], typer.Option(
    "--format", help="Output format when -o's name does not tell.", show_default=False)]
Map = Annotated[Optional[str], typer.Option(
    "--map", help="Map input fields onto the record: TARGET=SOURCE pairs, e.g. "
                  "problem=question,reference.answer=answer.", show_default=False)]
Preset = Annotated[Optional[PresetName], typer.Option(
    "--preset", help="A public format: gsm8k, math, processbench.", show_default=False)]
Split = Annotated[Optional[str], typer.Option(
    "--split", help="Split of a datasets folder or hf: dataset.", show_default=False)]
OnErrorOpt = Annotated[OnError, typer.Option(
    "--on-error", help="On a bad input record: fail (exit 1, no output) or skip it into --rejects.")]
Rejects = Annotated[Optional[str], typer.Option(
    "--rejects", help="JSONL file for rejected records, with line and reason "
                      "(default with -o: OUTPUT.rejects.jsonl).", show_default=False)]
Debug = Annotated[bool, typer.Option("--debug", help="Show tracebacks.")]


def io_options(input: str | None, output: str | None = None, fmt: OutputFormat | None = None,
               mapping: str | None = None, preset: PresetName | None = None, split: str | None = None,
               on_error: OnError = OnError.fail, rejects: str | None = None) -> "Options":
    from rubricate.formats.mapping import parse_map
    from rubricate.pipeline import Options

    return Options(input=input, output=output, output_format=fmt.value if fmt else None,
                   mapping=parse_map(mapping), preset=preset.value if preset else None, split=split,
                   on_error=on_error.value, rejects=rejects)


def report(summary: "Summary") -> None:
    """One line on stderr when records were rejected: nobody should have to count them."""
    if summary.rejected:
        typer.secho(f"rubricate: {summary.rejected} of {summary.read} records rejected "
                    f"-> {summary.rejects_path}", fg="yellow", err=True)


@contextmanager
def progress(label: str) -> Iterator[Callable[[dict], None] | None]:
    """A live count on stderr when it is a terminal; nothing otherwise (stdout stays pure data)."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn("{task.description}"),
                  TextColumn("{task.completed} records"), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=None)
        yield lambda _record: bar.advance(task)
