"""`probe`: checks on whether a reward can be trusted. `probe contamination`: can the model finish a
problem it is given 60% of? (arXiv 2507.10532)"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from rubricate.cli import model_options as m
from rubricate.cli import options as o

probe_app = typer.Typer(name="probe", add_completion=False, no_args_is_help=True,
                        help="Probe a model on a dataset: has it memorised the problems?")


@probe_app.callback()
def _probe() -> None:
    """Probe a model on a dataset: has it memorised the problems?"""


@probe_app.command("contamination")
@o.with_io
@m.with_model
def contamination(
    fraction: Annotated[float, typer.Option(
        "--fraction", min=0.05, max=0.95, help="Share of each problem's words given as the prompt; the cut "
                                               "falls after a whole word.")] = 0.6,
    answer: Annotated[bool, typer.Option(
        "--answer/--no-answer", help="Also ask the truncated problem as a question and check the final answer "
                                     "against reference.answer.")] = True,
    completion_tokens: Annotated[Optional[int], typer.Option(
        "--completion-tokens", min=1, help="Tokens the model may write to continue the prefix (default: about "
                                           "half the remainder's characters, plus 16).", show_default=False)] = None,
    answer_tokens: Annotated[int, typer.Option(
        "--answer-tokens", min=1, help="Tokens the model may write to answer the truncated problem.")] = 1024,
    template: Annotated[Optional[str], typer.Option(
        "--template", help="Jinja template for the truncated question; sees `prefix` and `record` (default: the "
                           "prefix, then 'reason step by step, final answer in \\boxed{}').",
        show_default=False)] = None,
    *, io: o.Options, engine: m.ModelSettings,
) -> None:
    """Continue each problem's first words, compare with the rest, ask the cut problem: feedback.contamination."""
    from rubricate.generators import contamination as gen
    from rubricate.prompts import load

    tmpl = load(template, "contamination_answer")
    seen = {"records": 0, "exact": 0, "probed": 0}

    async def fn(record: dict, llm) -> dict:
        return await gen.probe_record(record, llm, fraction=fraction, template=tmpl, ask_answer=answer,
                                      completion_tokens=completion_tokens, answer_tokens=answer_tokens)

    def failed(record: dict) -> bool:
        entry = record["feedback"]["contamination"]
        seen["records"] += 1
        seen["probed"] += entry["exact_match"] is not None
        seen["exact"] += entry["exact_match"] is True
        return "error" in entry

    try:
        m.run_model(io, engine, fn, failed=failed, requires=gen.REQUIRES, label="probe contamination")
    finally:
        if seen["probed"]:
            typer.secho(f"rubricate: {seen['exact']} of {seen['probed']} problems completed exactly from "
                        f"{fraction:.0%} prefixes ({100 * seen['exact'] / seen['probed']:.1f}%)", err=True)
