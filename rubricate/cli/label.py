from __future__ import annotations

import dataclasses

import re
from enum import Enum
from typing import Annotated, Optional

import typer

from rubricate.cli import model_options as m
from rubricate.cli import options as o
from rubricate.cli.steps import Strategy


class Method(str, Enum):
    judge = "judge"
    rollout = "rollout"
    expert = "expert"
    likelihood = "likelihood"


class Search(str, Enum):
    linear = "linear"
    binary = "binary"


class Parse(str, Enum):
    processbench = "processbench"
    thinkprm = "thinkprm"
    default = "default"


JUDGE_TEMPLATES = {"processbench": "label_processbench", "thinkprm": "label_thinkprm", "default": "label_judge"}


@o.with_io
@m.with_model(required=False)
def label(
    method: Annotated[Method, typer.Option(
        "--method", help="judge: a generative verifier; rollout: Monte-Carlo continuations from a policy; "
                         "expert: similarity to the reference solution's steps (no model); likelihood: gain "
                         "in log p(reference answer) from each step.")] = ...,
    into: Annotated[str, typer.Option(
        "--into", help="Store under feedback.NAME, e.g. to keep a second method's labels beside the first.")]
        = "step_labels",
    policy_model: Annotated[Optional[str], typer.Option(
        "--policy-model", help="rollout: the policy that continues each prefix (raw completions).",
        show_default=False)] = None,
    template: Annotated[Optional[str], typer.Option(
        "--template", help="judge: processbench, thinkprm, default, or a Jinja file; rollout / likelihood: a "
                           "Jinja file for the problem prompt.", show_default=False)] = None,
    parse: Annotated[Optional[Parse], typer.Option(
        "--parse", help="judge with a template file: how to read its answers (default: default).",
        show_default=False)] = None,
    samples: Annotated[int, typer.Option(
        "--samples", "-n", min=1, help="judge: samples per record, majority vote.")] = 1,
    rollouts: Annotated[int, typer.Option("--rollouts", min=1, help="rollout: continuations per prefix (N).")] = 8,
    search: Annotated[Search, typer.Option(
        "--search", help="rollout: estimate every prefix (linear) or bisect for the first MC=0 step (binary).")]
        = Search.linear,
    hard: Annotated[bool, typer.Option(
        "--hard", help="rollout: label MC(k) > 0 as 1 and MC(k) = 0 as 0 instead of MC(k) (binary is always hard).")]
        = False,
    threshold: Annotated[Optional[float], typer.Option(
        "--threshold", min=0.0, max=1.0, help="expert / likelihood: a step labelled below this is an error "
                                              "(default 0.25 / 0.1).", show_default=False)] = None,
    strategy: Annotated[Strategy, typer.Option(
        "--strategy", "-s", help="How to split responses that have no steps yet.")] = Strategy.auto,
    temperature: m.Temperature = None, top_p: m.TopP = None, max_tokens: m.MaxTokens = None, seed: m.Seed = None,
    *, io: o.Options, engine: m.ModelSettings,
) -> None:
    """Label each step (feedback.step_labels): by a judge, by rollouts, by the expert's steps or by likelihood gain."""
    from rubricate.errors import UsageError
    from rubricate.generators import load as load_generator
    from rubricate.prompts import bundled, load

    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_\-]*", into):
        raise UsageError(f"--into {into!r}: use a plain name (letters, digits, _ and -)")
    kind = method.value
    if threshold is not None and kind not in ("expert", "likelihood"):
        raise UsageError(f"--threshold applies to --method expert and likelihood, not {kind}")
    gen = load_generator(f"step_labels.{kind}")
    opts, model = io, engine.model  # --model: the judge or scoring model (judge, likelihood)
    params = m.sampling(temperature, top_p, max_tokens, seed)

    if kind == "rollout":
        if model is not None:
            raise UsageError("--method rollout continues prefixes with --policy-model, not --model")
        if policy_model is None:
            raise UsageError("--method rollout needs --policy-model", hint="For example --policy-model local.")
        used_model = policy_model
    else:
        if policy_model is not None:
            raise UsageError(f"--policy-model is for --method rollout, not {kind}")
        used_model = model
        if kind != "expert" and model is None:
            raise UsageError(f"--method {kind} needs --model")
    if kind == "expert":
        if model is not None:
            raise UsageError("--method expert needs no model")
        _expert(gen, opts, into, strategy.value, threshold)
        return

    if kind == "judge":
        if template is None or template in JUDGE_TEMPLATES:
            name = template or "default"
            tmpl, how = bundled(JUDGE_TEMPLATES[name]), name
            if parse is not None and parse.value != name:
                raise UsageError(f"--parse {parse.value} does not read the bundled {name} template's answers")
        else:
            tmpl, how = load(template, "label_judge"), (parse.value if parse else "default")

        async def fn(record: dict, llm) -> dict:
            return await gen.label_record(record, llm, template=tmpl, parse=how, samples=samples, params=params,
                                          into=into, strategy=strategy.value)
    elif kind == "rollout":
        tmpl = load(template, "label_rollout")
        params = {"temperature": 0.7, "max_tokens": 512, **params}
        hard_labels = hard or search is Search.binary

        async def fn(record: dict, llm) -> dict:
            return await gen.label_record(record, llm, template=tmpl, rollouts=rollouts, search=search.value,
                                          hard=hard_labels, params=params, into=into, strategy=strategy.value)
    else:
        tmpl = load(template, "label_likelihood")
        limit = gen.DEFAULT_THRESHOLD if threshold is None else threshold

        async def fn(record: dict, llm) -> dict:
            return await gen.label_record(record, llm, template=tmpl, into=into, strategy=strategy.value,
                                          threshold=limit)

    m.run_model(opts, dataclasses.replace(engine, model=used_model), fn,
                failed=lambda r: "error" in r["feedback"][into], label=f"label {kind}")


def _expert(gen, opts, into: str, strategy: str, threshold: float | None) -> None:
    from rubricate.errors import EXIT_FAILURE
    from rubricate.pipeline import each, run

    limit = gen.DEFAULT_THRESHOLD if threshold is None else threshold
    errors = 0

    def observe(record: dict) -> None:
        nonlocal errors
        errors += "error" in record["feedback"][into]
        if tick is not None:
            tick(record)

    with o.progress("label expert") as tick:
        summary = run(opts, each(lambda r: gen.label_record(r, into=into, strategy=strategy, threshold=limit)),
                      requires=gen.REQUIRES, observe=observe)
    o.report(summary)
    if errors:
        typer.secho(f"rubricate: {errors} of {summary.written} records kept an error (see their `error` field)",
                    fg="red", err=True)
        raise typer.Exit(EXIT_FAILURE)
