"""`rubricate`: composes the commands and turns user-facing errors into a message and an exit code."""

from __future__ import annotations

import os
import sys
from typing import Annotated, Optional

import typer

from rubricate import __version__
from rubricate.cli.critique import critique, refine
from rubricate.cli.evaluate import eval_app
from rubricate.cli.export import export
from rubricate.cli.generate import generate
from rubricate.cli.label import label
from rubricate.cli.probe import probe_app
from rubricate.cli.rubric import rubric_app
from rubricate.cli.sample import sample
from rubricate.cli.stats import stats
from rubricate.cli.steps import steps
from rubricate.cli.train import train_app
from rubricate.cli.verify import verify
from rubricate.errors import EXIT_INTERRUPTED, EXIT_USAGE, RubricateError

app = typer.Typer(
    name="rubricate",
    help="Turn LLM reasoning traces into the feedback a scalar reward leaves out, and into training "
         "data for the methods that use it. Every command reads records (stdin by default) and writes "
         "records (stdout by default), so commands compose in a shell pipeline.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: rich rendering doubles the time `--help` takes
    context_settings={"help_option_names": ["-h", "--help"]},
)

# In the order a pipeline uses them: records in, feedback, evaluation, datasets out, training.
app.command()(sample)
app.command()(steps)
app.command()(verify)
app.command()(critique)
app.command()(refine)
app.command()(label)
app.add_typer(rubric_app, name="rubric")
app.add_typer(probe_app, name="probe")
app.command()(generate)
app.add_typer(eval_app, name="eval")
app.command()(stats)
app.command()(export)
app.add_typer(train_app, name="train")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"rubricate {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[Optional[bool], typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the version and exit.")] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
) -> None:
    pass


def threading_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _debugging(argv: list[str]) -> bool:
    return "--debug" in argv or os.environ.get("RUBRICATE_DEBUG", "") not in ("", "0")


def _terminated(signum: int, frame: object) -> None:
    # `kill`: unwind like Ctrl-C so outputs are aborted (temporary files removed), then exit 128+15.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> None:
    import signal

    argv = sys.argv[1:] if argv is None else argv
    debug = _debugging(argv)
    if threading_main():
        signal.signal(signal.SIGTERM, _terminated)
    try:
        # Outside standalone mode typer returns the code of an Exit (Ctrl-C is Exit(130)) instead of
        # exiting, so the errors below can be printed our way.
        code = app(args=argv, prog_name="rubricate", standalone_mode=False)
        if isinstance(code, int) and code:
            if code == EXIT_INTERRUPTED:
                typer.secho("Interrupted.", fg="yellow", err=True)
            sys.exit(code)
    except RubricateError as exc:
        if debug:
            import traceback

            traceback.print_exc()
        typer.secho(f"Error: {exc.message}", fg="red", err=True)
        if exc.hint:
            typer.secho(f"Hint: {exc.hint}", fg="yellow", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        typer.secho("Interrupted.", fg="yellow", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as Unix tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(0)
    except Exception as exc:
        # Click's own exceptions (typer may ship a vendored click): matched by their interface.
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):  # usage errors
            exc.show()
            sys.exit(exc.exit_code or EXIT_USAGE)
        if type(exc).__name__ == "Exit":
            sys.exit(getattr(exc, "exit_code", 0))
        if type(exc).__name__ == "Abort":
            typer.secho("Interrupted.", fg="yellow", err=True)
            sys.exit(EXIT_INTERRUPTED)
        raise


if __name__ == "__main__":
    main()
