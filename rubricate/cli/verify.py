from __future__ import annotations

from typing import Annotated

import typer

from rubricate.cli import options as o


@o.with_io
def verify(
    timeout: Annotated[float, typer.Option(
        "--timeout", help="Seconds a comparison may take before it gives correct: null.")] = 3.0,
    fallback: Annotated[bool, typer.Option(
        "--fallback/--no-fallback", help="Take the last number as the answer when nothing marks one "
                                         "(recorded as method last_number).")] = True,
    *, io: o.Options,
) -> None:
    """Extract each final answer and check it against reference.answer (math-verify): feedback.outcome."""
    from rubricate.generators import outcome as gen
    from rubricate.pipeline import each, run

    with o.progress("verify") as tick:
        summary = run(io, each(lambda r: gen.verify_record(r, timeout=timeout, fallback=fallback)),
                      requires=gen.REQUIRES, observe=tick)
    o.report(summary)
