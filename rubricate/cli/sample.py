from __future__ import annotations

from typing import Annotated, Optional

import typer

from rubricate.cli import model_options as m
from rubricate.cli import options as o


def sample(
    input: o.Input = None,
    model: m.Model = ...,
    n: Annotated[int, typer.Option("--n", "-n", min=1, help="Rollouts per problem.")] = 8,
    template: Annotated[Optional[str], typer.Option(
        "--template", help="Jinja template for the prompt (default: the problem, then 'reason step by step, "
                           "final answer in \\boxed{}').", show_default=False)] = None,
    raw: Annotated[bool, typer.Option(
        "--raw", help="Continue a raw prompt (for base models; default template 'Question: ... Answer:').")] = False,
    temperature: m.Temperature = 1.0, top_p: m.TopP = None, max_tokens: m.MaxTokens = None, seed: m.Seed = None,
    api_base: m.ApiBase = None, concurrency: m.Concurrency = 16, rpm: m.Rpm = None, tpm: m.Tpm = None,
    max_retries: m.MaxRetries = 5, timeout: m.Timeout = 120.0, cache: m.CachePath = None,
    no_cache: m.NoCache = False, refresh: m.Refresh = False, stats_json: m.StatsJson = None,
    output: o.Output = None, fmt: o.Format = None, mapping: o.Map = None, preset: o.Preset = None,
    split: o.Split = None, on_error: o.OnErrorOpt = o.OnError.fail, rejects: o.Rejects = None,
    debug: o.Debug = False,
) -> None:
    """Sample n rollouts per problem from a policy model; each becomes a trace record (group = problem id)."""
    from rubricate.generators.sample import sample_record
    from rubricate.prompts import load

    tmpl = load(template, "sample_base" if raw else "sample")
    params = m.sampling(temperature, top_p, max_tokens, seed)

    async def fn(record: dict, llm) -> list[dict]:
        return await sample_record(record, llm, template=tmpl, n=n, params=params, raw=raw)

    m.run_with_model(o.io_options(input, output, fmt, mapping, preset, split, on_error, rejects), fn,
                     model=model, api_base=api_base, concurrency=concurrency, rpm=rpm, tpm=tpm,
                     max_retries=max_retries, timeout=timeout, cache=cache, no_cache=no_cache, refresh=refresh,
                     stats_json=stats_json, failed=lambda r: "error" in r.get("meta", {}).get("rollout", {}),
                     label="sample")
