from __future__ import annotations

from typing import Annotated, Optional

import typer

from rubricate.cli import model_options as m
from rubricate.cli import options as o


@o.with_io
@m.with_model
def sample(
    n: Annotated[int, typer.Option("--n", "-n", min=1, help="Rollouts per problem.")] = 8,
    template: Annotated[Optional[str], typer.Option(
        "--template", help="Jinja template for the prompt (default: the problem, then 'reason step by step, "
                           "final answer in \\boxed{}').", show_default=False)] = None,
    raw: Annotated[bool, typer.Option(
        "--raw", help="Continue a raw prompt (for base models; default template 'Question: ... Answer:').")] = False,
    temperature: m.Temperature = 1.0, top_p: m.TopP = None, max_tokens: m.MaxTokens = None, seed: m.Seed = None,
    *, io: o.Options, engine: m.ModelSettings,
) -> None:
    """Sample n rollouts per problem from a policy model; each becomes a trace record (group = problem id)."""
    from rubricate.generators.sample import sample_record
    from rubricate.prompts import load

    tmpl = load(template, "sample_base" if raw else "sample")
    params = m.sampling(temperature, top_p, max_tokens, seed)

    async def fn(record: dict, llm) -> list[dict]:
        return await sample_record(record, llm, template=tmpl, n=n, params=params, raw=raw)

    m.run_model(io, engine, fn, failed=lambda r: "error" in r.get("meta", {}).get("rollout", {}), label="sample")
