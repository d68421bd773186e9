"""What a run cost: requests, cache hits, retries, failures, tokens, money and time."""

from __future__ import annotations

import importlib.util
import json
import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

PRICE_FILE = "model_prices_and_context_window_backup.json"


@lru_cache(maxsize=1)
def _prices() -> dict[str, Any]:
    """litellm's bundled price map, read as a file: importing litellm would cost seconds."""
    spec = importlib.util.find_spec("litellm")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / PRICE_FILE
        if path.exists():
            try:
                return json.loads(path.read_text("utf-8"))
            except ValueError:
                return {}
    return {}


def price_per_token(backend: str, model: str) -> tuple[float, float] | None:
    """(input, output) USD per token, when the price map knows the model."""
    prices = _prices()
    candidates = [model, f"{backend}/{model}", model.split("/", 1)[-1]]
    for name in candidates:
        entry = prices.get(name)
        if isinstance(entry, dict) and "input_cost_per_token" in entry:
            return float(entry.get("input_cost_per_token") or 0), float(entry.get("output_cost_per_token") or 0)
    return None


@dataclass
class Accounting:
    backend: str = ""
    model: str = ""
    requests: int = 0  # calls that reached the provider, retries included
    cache_hits: int = 0  # samples served from the cache
    retries: int = 0
    failures: int = 0  # requests that failed after their retries
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None
    started: float = field(default_factory=time.monotonic)
    wall_seconds: float = 0.0

    def add_usage(self, prompt_tokens: int, completion_tokens: int) -> None:
        self.prompt_tokens += prompt_tokens
        self.completion_tokens += completion_tokens

    def finish(self) -> dict[str, Any]:
        self.wall_seconds = time.monotonic() - self.started
        price = price_per_token(self.backend, self.model) if self.backend != "local" else (0.0, 0.0)
        self.cost_usd = (None if price is None else
                         round(self.prompt_tokens * price[0] + self.completion_tokens * price[1], 6))
        data = asdict(self)
        data.pop("started")
        data["wall_seconds"] = round(self.wall_seconds, 3)
        data["requests_per_second"] = round(self.requests / self.wall_seconds, 2) if self.wall_seconds else None
        return data
