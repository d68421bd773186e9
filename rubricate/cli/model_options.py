"""Options every command that calls a model shares, and the one function that runs such a command."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Annotated, Any, Awaitable, Callable, Optional

import typer

from rubricate.cli import options as o

Model = Annotated[str, typer.Option(
    "--model", "-m", help="openai/MODEL, anthropic/MODEL, any litellm provider/MODEL, local or local:PATH.gguf.")]
ApiBase = Annotated[Optional[str], typer.Option(
    "--api-base", help="Base URL of an OpenAI-compatible server (vLLM, SGLang, llama.cpp, Ollama).",
    show_default=False)]
Concurrency = Annotated[int, typer.Option("--concurrency", "-c", min=1, help="Requests in flight.")]
Rpm = Annotated[Optional[float], typer.Option("--rpm", min=0.0, help="Client-side requests-per-minute limit.",
                                              show_default=False)]
Tpm = Annotated[Optional[float], typer.Option("--tpm", min=0.0, help="Client-side tokens-per-minute limit.",
                                              show_default=False)]
MaxRetries = Annotated[int, typer.Option("--max-retries", min=0, help="Retries on 429, 5xx, timeouts, drops.")]
Timeout = Annotated[float, typer.Option("--timeout", min=0.001, help="Seconds one request may take.")]
CachePath = Annotated[Optional[str], typer.Option(
    "--cache", help="SQLite cache file (default: the user's cache folder).", show_default=False)]
NoCache = Annotated[bool, typer.Option("--no-cache", help="Neither read nor write the cache.")]
Refresh = Annotated[bool, typer.Option("--refresh", help="Ask again and overwrite cached answers.")]
StatsJson = Annotated[Optional[str], typer.Option(
    "--stats-json", help="Write the run's accounting (requests, tokens, cost, time) as JSON here.",
    show_default=False)]
Temperature = Annotated[Optional[float], typer.Option("--temperature", "-t", show_default=False)]
TopP = Annotated[Optional[float], typer.Option("--top-p", show_default=False)]
MaxTokens = Annotated[Optional[int], typer.Option("--max-tokens", min=1, show_default=False)]
Seed = Annotated[Optional[int], typer.Option("--seed", show_default=False)]


def sampling(temperature: float | None, top_p: float | None, max_tokens: int | None,
             seed: int | None) -> dict[str, Any]:
    return {k: v for k, v in {"temperature": temperature, "top_p": top_p, "max_tokens": max_tokens,
                              "seed": seed}.items() if v is not None}


@dataclass
class ModelSettings:
    """What the shared model options say: which model, and how the engine should call it."""

    model: str | None = None
    api_base: str | None = None
    concurrency: int = 16
    rpm: float | None = None
    tpm: float | None = None
    max_retries: int = 5
    timeout: float = 120.0
    cache: str | None = None
    no_cache: bool = False
    refresh: bool = False
    stats_json: str | None = None


def _engine_params(required: bool) -> dict[str, tuple[Any, Any]]:
    model = Model if required else Annotated[Optional[str], typer.Option(
        "--model", "-m", help="openai/MODEL, anthropic/MODEL, any litellm provider/MODEL, local or local:PATH.gguf.",
        show_default=False)]
    return {"model": (model, ... if required else None), "api_base": (ApiBase, None),
            "concurrency": (Concurrency, 16), "rpm": (Rpm, None), "tpm": (Tpm, None),
            "max_retries": (MaxRetries, 5), "timeout": (Timeout, 120.0), "cache": (CachePath, None),
            "no_cache": (NoCache, False), "refresh": (Refresh, False), "stats_json": (StatsJson, None)}


def with_model(fn: Callable | None = None, *, required: bool = True) -> Callable:
    """Add the model and engine options; the command gets them as `engine` (ModelSettings)."""
    def decorate(f: Callable) -> Callable:
        return o.shared_options("engine", _engine_params(required), lambda values: ModelSettings(**values))(f)
    return decorate(fn) if fn is not None else decorate


def run_model(io: Any, engine: ModelSettings, fn: Callable[[dict, Any], Awaitable[Any]], *,
                   failed: Callable[[dict], bool], requires: tuple[str, ...] = ("problem",), label: str = "") -> None:
    """Read, call the model for each record (in input order, bounded memory), write; then the
    accounting on stderr. Exits 3 when any record kept an error."""
    from rubricate.errors import EXIT_FAILURE, UsageError
    from rubricate.llm.backends import make_backend, parse_model
    from rubricate.llm.engine import Engine, EngineConfig
    from rubricate.pipeline import each_async, run

    if not engine.model:
        raise UsageError("this command needs --model")
    parse_model(engine.model)  # a bad --model is a usage error before any input is read
    config = EngineConfig(concurrency=engine.concurrency, rpm=engine.rpm, tpm=engine.tpm,
                          max_retries=engine.max_retries, timeout=engine.timeout, cache_path=engine.cache,
                          use_cache=not engine.no_cache, refresh=engine.refresh)
    engines: list[Any] = []

    async def setup() -> Any:
        backend = make_backend(engine.model, api_base=engine.api_base, timeout=engine.timeout,
                               concurrency=engine.concurrency)
        llm = Engine(backend, config, spec=engine.model)
        engines.append(llm)
        return llm

    async def teardown(llm: Any) -> None:
        await llm.aclose()

    errors = 0

    def observe(record: dict) -> None:
        nonlocal errors
        errors += failed(record)
        if tick is not None:
            tick(record)

    window = max(256, 4 * engine.concurrency)
    with o.progress(label) as tick:
        try:
            summary = run(io, each_async(fn, window=window, setup=setup, teardown=teardown),
                          requires=requires, observe=observe)
        finally:
            if engines:
                _report(engines[0].accounting.finish(), engine.stats_json)
    o.report(summary)
    if errors:
        typer.secho(f"rubricate: {errors} of {summary.written} records kept an error (see their `error` field)",
                    fg="red", err=True)
        raise typer.Exit(EXIT_FAILURE)


def _report(stats: dict[str, Any], path: str | None) -> None:
    if path:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(stats, fh, indent=2)
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{stats['backend']}/{stats['model']}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    cost = "unknown price" if stats["cost_usd"] is None else f"${stats['cost_usd']:.4f}"
    for name, value in (("requests", stats["requests"]), ("cache hits", stats["cache_hits"]),
                        ("retries", stats["retries"]), ("failures", stats["failures"]),
                        ("prompt tokens", stats["prompt_tokens"]), ("completion tokens", stats["completion_tokens"]),
                        ("cost", cost), ("wall time", f"{stats['wall_seconds']:.2f} s"),
                        ("requests/s", stats["requests_per_second"])):
        table.add_row(name, str(value))
    Console(stderr=True, file=sys.stderr).print(table)
