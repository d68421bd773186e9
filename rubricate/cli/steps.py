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


def steps(
    input: o.Input = None,
    strategy: Annotated[Strategy, typer.Option("--strategy", "-s", help="How to split the response.")] = Strategy.auto,
    output: o.Output = None, fmt: o.Format = None, mapping: o.Map = None, preset: o.Preset = None,
    split: o.Split = None, on_error: o.OnErrorOpt = o.OnError.fail, rejects: o.Rejects = None,
    debug: o.Debug = False,
) -> None:
    """Segment each `response` into `steps` (and `step_spans`); given steps stay untouched."""
    from rubricate.generators import steps as gen
    from rubricate.pipeline import each, run

    opts = o.io_options(input, output, fmt, mapping, preset, split, on_error, rejects)
    with o.progress("steps") as tick:
        summary = run(opts, each(lambda r: gen.segment_record(r, strategy.value)),
                      requires=gen.REQUIRES, observe=tick)
    o.report(summary)
