from __future__ import annotations

from typing import Annotated

import typer

from rubricate.cli import options as o


def verify(
    input: o.Input = None,
    timeout: Annotated[float, typer.Option(
        "--timeout", help="Seconds a comparison may take before it gives correct: null.")] = 3.0,
    fallback: Annotated[bool, typer.Option(
        "--fallback/--no-fallback", help="Take the last number as the answer when nothing marks one "
                                         "(recorded as method last_number).")] = True,
    output: o.Output = None, fmt: o.Format = None, mapping: o.Map = None, preset: o.Preset = None,
    split: o.Split = None, on_error: o.OnErrorOpt = o.OnError.fail, rejects: o.Rejects = None,
    debug: o.Debug = False,
) -> None:
    """Extract each final answer and check it against reference.answer (math-verify): feedback.outcome."""
    from rubricate.generators import outcome as gen
    from rubricate.pipeline import each, run

    opts = o.io_options(input, output, fmt, mapping, preset, split, on_error, rejects)
    with o.progress("verify") as tick:
        summary = run(opts, each(lambda r: gen.verify_record(r, timeout=timeout, fallback=fallback)),
                      requires=gen.REQUIRES, observe=tick)
    o.report(summary)
