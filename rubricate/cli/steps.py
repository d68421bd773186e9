from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

from rubricate.cli import options as o


class Strategy(str, Enum):
    auto = "auto"
    paragraph = "paragraph"
    numbered = "numbered"
    line = "line"
    sentence = "sentence"


@o.with_io
def steps(
    strategy: Annotated[Strategy, typer.Option("--strategy", "-s", help="How to split the response.")] = Strategy.auto,
    *, io: o.Options,
) -> None:
    """Segment each `response` into `steps` (and `step_spans`); given steps stay untouched."""
    from rubricate.generators import steps as gen
    from rubricate.pipeline import each, run

    with o.progress("steps") as tick:
        summary = run(io, each(lambda r: gen.segment_record(r, strategy.value)), requires=gen.REQUIRES, observe=tick)
    o.report(summary)
