from __future__ import annotations

import re
from typing import Annotated, Optional

import typer

from rubricate.cli import model_options as m
from rubricate.cli import options as o


def generate(
    input: o.Input = None,
    template: Annotated[str, typer.Option("--template", help="Jinja template file; sees each record field.")] = ...,
    model: m.Model = ...,
    into: Annotated[str, typer.Option("--into", help="Store the answer under feedback.NAME.")] = ...,
    raw: Annotated[bool, typer.Option("--raw", help="Send the rendered text as a raw prompt to continue.")] = False,
    system: Annotated[Optional[str], typer.Option("--system", help="A system prompt.", show_default=False)] = None,
    samples: Annotated[int, typer.Option("--samples", "-n", min=1, help="Samples per record.")] = 1,
    temperature: m.Temperature = None, top_p: m.TopP = None, max_tokens: m.MaxTokens = None, seed: m.Seed = None,
    api_base: m.ApiBase = None, concurrency: m.Concurrency = 16, rpm: m.Rpm = None, tpm: m.Tpm = None,
    max_retries: m.MaxRetries = 5, timeout: m.Timeout = 120.0, cache: m.CachePath = None,
    no_cache: m.NoCache = False, refresh: m.Refresh = False, stats_json: m.StatsJson = None,
    output: o.Output = None, fmt: o.Format = None, mapping: o.Map = None, preset: o.Preset = None,
    split: o.Split = None, on_error: o.OnErrorOpt = o.OnError.fail, rejects: o.Rejects = None,
    debug: o.Debug = False,
) -> None:
    """Render a template per record, ask a model, and store the answer under feedback.NAME."""
    from rubricate.errors import UsageError
    from rubricate.generators.generate import generate_record
    from rubricate.prompts import load

    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_\-]*", into):
        raise UsageError(f"--into {into!r}: use a plain name (letters, digits, _ and -)")
    tmpl = load(template, "generate")
    params = m.sampling(temperature, top_p, max_tokens, seed)
    if samples > 1:
        params["n"] = samples

    async def fn(record: dict, llm) -> dict:
        return await generate_record(record, llm, template=tmpl, into=into, params=params, raw=raw, system=system)

    m.run_with_model(o.io_options(input, output, fmt, mapping, preset, split, on_error, rejects), fn,
                     model=model, api_base=api_base, concurrency=concurrency, rpm=rpm, tpm=tpm,
                     max_retries=max_retries, timeout=timeout, cache=cache, no_cache=no_cache, refresh=refresh,
                     stats_json=stats_json, failed=lambda r: "error" in r["feedback"][into], label="generate")
