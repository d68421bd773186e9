"""`critique` and `refine`: Critique-GRPO's critiques and critique-guided refinements."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Optional

import typer

from rubricate.cli import model_options as m
from rubricate.cli import options as o


class CritiqueType(str, Enum):
    indicative = "indicative"
    ground_truth = "ground-truth"
    cot = "cot"


class Only(str, Enum):
    incorrect = "incorrect"
    correct = "correct"
    all = "all"


@o.with_io
@m.with_model(required=False)
def critique(
    kind: Annotated[CritiqueType, typer.Option(
        "--type", help="indicative: 'The generated solution is correct/incorrect.'; ground-truth: the same with "
                       "', the ground truth is X.' (no model; Critique-GRPO's simple and simple_gt); cot: a judge "
                       "model's step-by-step critique (needs --model).")] = CritiqueType.ground_truth,
    template: Annotated[Optional[str], typer.Option(
        "--template", help="Jinja template for --type cot (default: rubricate's critique_cot; the bundled "
                           "critique_grpo is Critique-GRPO's own prompt, give it as critique_grpo).",
        show_default=False)] = None,
    only: Annotated[Optional[Only], typer.Option(
        "--only", help="Which responses to critique, by feedback.outcome (verified when absent); the rest pass "
                       "through. Default: incorrect for cot (as Critique-GRPO), all otherwise.",
        show_default=False)] = None,
    samples: Annotated[int, typer.Option(
        "--samples", "-n", min=1, help="cot: critiques per response; the majority verdict and the agreement "
                                       "are recorded.")] = 1,
    temperature: m.Temperature = None, top_p: m.TopP = None, max_tokens: m.MaxTokens = None, seed: m.Seed = None,
    *, io: o.Options, engine: m.ModelSettings,
) -> None:
    """Critique each response: feedback.critique (verdict, first error step, directive)."""
    from rubricate.errors import UsageError
    from rubricate.generators import critique as gen

    opts, model = io, engine.model
    tally = _Tally()
    if kind is not CritiqueType.cot:
        for name, given in (("--model", model), ("--template", template), ("--samples", samples > 1)):
            if given:
                raise UsageError(f"{name} applies to --type cot only",
                                 hint=f"--type {kind.value} restates feedback.outcome and calls no model.")
        from rubricate.pipeline import each, run

        chosen = (only or Only.all).value
        with o.progress("critique") as tick:
            summary = run(opts, each(lambda r: gen.simple_record(r, kind.value, only=chosen)),
                          requires=gen.REQUIRES, observe=lambda r: (tally.add(r), tick and tick(r)))
        o.report(summary)
        tally.report()
        return
    if model is None:
        raise UsageError("--type cot needs --model", hint="For example --model openai/gpt-4o-mini, or --model local.")
    tmpl = _template(template, "critique_cot")
    repair = _template(None, "critique_repair")
    params = m.sampling(temperature, top_p, max_tokens, seed)
    chosen = (only or Only.incorrect).value

    async def fn(record: dict, llm) -> dict:
        return await gen.cot_record(record, llm, template=tmpl, repair=repair, params=params, samples=samples,
                                    only=chosen)

    try:
        m.run_model(opts, engine, fn, failed=tally.add, requires=gen.REQUIRES, label="critique")
    finally:
        tally.report()


@o.with_io
@m.with_model
def refine(
    samples: Annotated[int, typer.Option("--samples", "-n", min=1, help="Refinements per critiqued response.")] = 1,
    template: Annotated[Optional[str], typer.Option(
        "--template", help="Jinja template (default: Critique-GRPO's refinement prompt); sees problem, response, "
                           "critique and every record field.", show_default=False)] = None,
    fallback: Annotated[bool, typer.Option(
        "--fallback/--no-fallback", help="Take a refinement's last number as its answer when no \\boxed{} or "
                                         "other marker gives one (off: the prompt asks for \\boxed{}).")] = False,
    temperature: m.Temperature = 1.0, top_p: m.TopP = None, max_tokens: m.MaxTokens = None, seed: m.Seed = None,
    *, io: o.Options, engine: m.ModelSettings,
) -> None:
    """Rewrite each critiqued response with the policy model, guided by its critique; verify every rewrite:
    feedback.refinement."""
    from rubricate.generators import refine as gen

    tmpl = _template(template, "refine")
    params = m.sampling(temperature, top_p, max_tokens, seed)
    seen = {"records": 0, "refined": 0}

    async def fn(record: dict, llm) -> dict:
        return await gen.refine_record(record, llm, template=tmpl, samples=samples, params=params,
                                       fallback=fallback)

    def failed(record: dict) -> bool:
        seen["records"] += 1
        entry = (record.get("feedback") or {}).get("refinement")
        seen["refined"] += isinstance(entry, dict)
        return isinstance(entry, dict) and "error" in entry

    try:
        m.run_model(io, engine, fn, failed=failed, requires=gen.REQUIRES, label="refine")
    finally:
        if seen["records"] > seen["refined"]:
            typer.secho(f"rubricate: {seen['records'] - seen['refined']} of {seen['records']} records had no "
                        "critique text to refine from and passed through", fg="yellow", err=True)


def _template(spec: str | None, default: str):
    """A user's file, a bundled template by name (critique_grpo), or the default."""
    from rubricate.errors import UsageError
    from rubricate.prompts import bundled, load

    if spec is not None and "/" not in spec and not spec.endswith(".jinja"):
        try:
            return bundled(spec)
        except UsageError:
            pass  # not a bundled name: load() says the file is missing
    return load(spec, default)


class _Tally:
    """Counts for the one line on stderr after a critique run; `add` doubles as run_model's `failed`."""

    def __init__(self) -> None:
        self.records = self.critiqued = self.without = 0

    def add(self, record: dict) -> bool:
        self.records += 1
        entry = (record.get("feedback") or {}).get("critique")
        if not isinstance(entry, dict):
            return False
        self.critiqued += 1
        self.without += entry.get("verdict") is None and "error" not in entry
        return "error" in entry

    def report(self) -> None:
        if self.critiqued == self.records and not self.without:
            return
        note = f"; {self.without} got no critique (see their `reason`)" if self.without else ""
        typer.secho(f"rubricate: critiqued {self.critiqued} of {self.records} records{note}",
                    fg="yellow" if self.without else None, err=True)
