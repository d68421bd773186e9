"""From a `--model` string to a backend. The dict is the registry: one line per backend module."""

from __future__ import annotations

import importlib
from typing import Any

from rubricate.errors import UsageError
from rubricate.llm.types import Backend

BACKENDS: dict[str, str] = {
    "openai": "rubricate.llm.openai_api:OpenAIBackend",
    "anthropic": "rubricate.llm.anthropic_api:AnthropicBackend",
    "litellm": "rubricate.llm.litellm_api:LiteLLMBackend",
    "local": "rubricate.llm.local:LocalBackend",
}


def parse_model(spec: str) -> tuple[str, str]:
    """`openai/gpt-4o-mini` -> ("openai", "gpt-4o-mini"); `gemini/x` -> ("litellm", "gemini/x");
    `local` / `local:PATH` -> ("local", PATH or "")."""
    spec = spec.strip()
    if spec == "local" or spec.startswith("local:"):
        return "local", spec[len("local:"):] if spec.startswith("local:") else ""
    provider, sep, name = spec.partition("/")
    if not sep or not provider or not name:
        raise UsageError(f"--model {spec!r}: say which provider serves it",
                         hint="For example openai/gpt-4o-mini, anthropic/claude-sonnet-4-5, gemini/gemini-2.0-flash, "
                              "hosted_vllm/MODEL with --api-base, or local.")
    if provider in ("openai", "anthropic"):
        return provider, name
    return "litellm", spec


def make_backend(spec: str, *, api_base: str | None = None, timeout: float = 60.0, concurrency: int = 64,
                 **options: Any) -> Backend:
    kind, name = parse_model(spec)
    module_name, _, class_name = BACKENDS[kind].partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    if kind == "local":
        if api_base:
            raise UsageError("--api-base does not apply to --model local",
                             hint="For llama.cpp's own server use --model openai/NAME --api-base URL.")
        return cls(name or None, **options)
    return cls(name, api_base=api_base, timeout=timeout, concurrency=concurrency)
