from __future__ import annotations

import json
import re
from typing import Annotated

import typer

from rubricate.cli import options as o

eval_app = typer.Typer(name="eval", help="Score feedback against a benchmark's gold labels.",
                       no_args_is_help=True, add_completion=False)


@eval_app.command("processbench")
def processbench(
    input: o.Input = None,
    source: Annotated[str, typer.Option(
        "--from", help="Where predictions come from: a step-labels entry (step_labels, or the NAME given to "
                       "label --into) or critique (feedback.critique.first_error_step).")] = "step_labels",
    as_json: Annotated[bool, typer.Option("--json", help="Print the scores as JSON for scripts.")] = False,
    mapping: o.Map = None, preset: o.Preset = None, split: o.Split = None,
    on_error: o.OnErrorOpt = o.OnError.fail, rejects: o.Rejects = None, debug: o.Debug = False,
) -> None:
    """ProcessBench's metric: accuracy on erroneous and on correct samples, and their F1, by subset and generator."""
    from rubricate.errors import UsageError
    from rubricate.evaluation.processbench import Evaluation
    from rubricate.pipeline import consume

    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_\-]*", source):
        raise UsageError(f"--from {source!r}: name a feedback entry (step_labels, critique, ...)")
    ev = Evaluation(source)
    summary = consume(o.io_options(input, None, None, mapping, preset, split, on_error, rejects), ev.add)
    result = ev.summary()
    result["rejected"] = summary.rejected
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        _render(result)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def _render(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"ProcessBench scores of feedback.{result['source']} (percent)", header_style="bold",
                  title_justify="left")
    table.add_column("", no_wrap=True)
    # Counts, then ProcessBench's accuracy on erroneous samples, on correct samples, and F1.
    for name in ("n", "n err", "n ok", "acc err", "acc ok", "F1"):
        table.add_column(name, justify="right")

    def row(name: str, s: dict, style: str | None = None) -> None:
        table.add_row(name, str(s["samples"]), str(s["erroneous"]), str(s["correct"]), _pct(s["error_accuracy"]),
                      _pct(s["correct_accuracy"]), _pct(s["f1"]), style=style)

    row("all", result["overall"], "bold")
    for group in ("by_subset", "by_generator"):
        table.add_section()
        for name, s in result[group].items():
            row(name, s)
    console.print(table)
    s = result["overall"]
    c = s["confusion"]
    console.print(f"errors found too early {c['too_early']}, too late {c['too_late']}, missed {c['missed']} "
                  f"(of {s['erroneous']} erroneous); false alarms {c['false_alarm']} (of {s['correct']} correct); "
                  f"no prediction {c['no_prediction']}")
    notes = [f"{v} {k}" for k, v in result["skipped"].items()]
    if result["rejected"]:
        notes.append(f"{result['rejected']} rejected")
    if notes:
        console.print("skipped: " + ", ".join(notes), style="yellow")
