from __future__ import annotations

import re
from typing import Annotated, Optional

import typer

from rubricate.cli import model_options as m
from rubricate.cli import options as o


@o.with_io
@m.with_model
def generate(
    template: Annotated[str, typer.Option("--template", help="Jinja template file; sees each record field.")],
    into: Annotated[str, typer.Option("--into", help="Store the answer under feedback.NAME.")],
    raw: Annotated[bool, typer.Option("--raw", help="Send the rendered text as a raw prompt to continue.")] = False,
    system: Annotated[Optional[str], typer.Option("--system", help="A system prompt.", show_default=False)] = None,
    samples: Annotated[int, typer.Option("--samples", "-n", min=1, help="Samples per record.")] = 1,
    temperature: m.Temperature = None, top_p: m.TopP = None, max_tokens: m.MaxTokens = None, seed: m.Seed = None,
    *, io: o.Options, engine: m.ModelSettings,
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

    m.run_model(io, engine, fn, failed=lambda r: "error" in r["feedback"][into], label="generate")
