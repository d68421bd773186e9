"""Options every record command shares, declared once."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any, Callable, Iterator, Optional

import typer

if TYPE_CHECKING:
    from rubricate.pipeline import Options, Summary


class OnError(str, Enum):
    fail = "fail"
    skip = "skip"


class PresetName(str, Enum):
    """rubricate.formats.presets.PRESETS by name (a test keeps the two in step)."""

    gsm8k = "gsm8k"
    math = "math"
    processbench = "processbench"
    prm800k = "prm800k"
    prm800k_neutral_good = "prm800k-neutral-good"
    math_shepherd = "math-shepherd"


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
    "--preset", help="A public format: gsm8k, math, processbench, prm800k, prm800k-neutral-good, math-shepherd.",
    show_default=False)]
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


def shared_options(name: str, params: dict[str, tuple[Any, Any]], collect: Callable[[dict], Any]):
    """A decorator that adds `params` ({option: (Annotated type, default)}) to a command's signature
    and hands the command one object, `collect(values)`, as its argument `name` instead.

    Typer reads `__signature__`, so each command lists only its own options and every shared one is
    declared once, here and in model_options.
    """
    import functools
    import inspect

    def decorate(fn: Callable) -> Callable:
        # Annotations are strings under `from __future__ import annotations`: evaluate the command's
        # own, but not the one being replaced (its type may be imported for type checkers only).
        own = [p.replace(annotation=_evaluate(p.annotation, fn.__globals__))
               for p in inspect.signature(fn).parameters.values() if p.name != name]
        added = [inspect.Parameter(key, inspect.Parameter.KEYWORD_ONLY, annotation=annotation,
                                   default=inspect.Parameter.empty if default is ... else default)
                 for key, (annotation, default) in params.items()]
        own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
               else p for p in own]

        @functools.wraps(fn)
        def command(**kwargs: Any) -> Any:
            shared = {key: kwargs.pop(key) for key in params}
            kwargs[name] = collect(shared)
            return fn(**kwargs)

        command.__signature__ = inspect.Signature(own + added)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in own + added}
        del command.__wrapped__  # type: ignore[attr-defined]  # typer must see the new signature
        return command

    return decorate


def _evaluate(annotation: Any, namespace: dict) -> Any:
    """A string annotation's value; one that names a type-checking-only import stays a string (it
    belongs to a parameter another decorator removes before typer reads the signature)."""
    if not isinstance(annotation, str):
        return annotation
    try:
        return eval(annotation, namespace)  # noqa: S307 - our own source's annotations
    except (NameError, AttributeError):
        return annotation


IO_PARAMS: dict[str, tuple[Any, Any]] = {
    "input": (Input, None), "output": (Output, None), "fmt": (Format, None), "mapping": (Map, None), "preset": (Preset, None),
    "split": (Split, None), "on_error": (OnErrorOpt, OnError.fail), "rejects": (Rejects, None),
    "debug": (Debug, False),
}


def with_io(fn: Callable) -> Callable:
    """Add the input argument and -o/--format/--map/--preset/--split/--on-error/--rejects/--debug;
    the command gets them as `io` (the pipeline's Options)."""
    def collect(values: dict) -> "Options":
        return io_options(values["input"], values["output"], values["fmt"], values["mapping"], values["preset"],
                          values["split"], values["on_error"], values["rejects"])
    return shared_options("io", IO_PARAMS, collect)(fn)
