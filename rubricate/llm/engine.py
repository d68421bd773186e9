"""The engine around one backend: concurrency, rate limits, retries with backoff, the cache, and
accounting. Generators talk to it through `complete(request)`; tests hand them a fake instead."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, replace
from pathlib import Path

from rubricate.llm.accounting import Accounting
from rubricate.llm.cache import Cache, request_key
from rubricate.llm.limits import Limits
from rubricate.llm.types import (Backend, Completion, FatalError, Request, RequestFailed, RequestRejected,
                                 RetryableError)


@dataclass
class EngineConfig:
    concurrency: int = 16
    rpm: float | None = None
    tpm: float | None = None
    max_retries: int = 5
    timeout: float = 120.0
    cache_path: str | Path | None = None  # None: the user's cache folder
    use_cache: bool = True
    refresh: bool = False  # ask again and overwrite what the cache holds
    backoff_base: float = 1.0
    backoff_max: float = 60.0


def estimate_tokens(request: Request) -> int:
    """A pessimistic count for the tokens-per-minute bucket before the true usage is known."""
    chars = len(request.prompt or "") + len(request.score or "") + len(request.system or "") + len(request.prefill or "")
    chars += sum(len(str(m.get("content", ""))) for m in request.messages or ())
    return chars // 4 + 1 + (request.max_tokens or 512) * request.n


class Engine:
    def __init__(self, backend: Backend, config: EngineConfig | None = None, *, cache: Cache | None = None,
                 spec: str | None = None):
        self.backend = backend
        self.spec = spec or backend.model  # the --model string as the user gave it, for provenance
        self.config = config or EngineConfig()
        self.cache = cache if cache is not None else (
            Cache(self.config.cache_path) if self.config.use_cache else None)
        self.limits = Limits(self.config.rpm, self.config.tpm)
        self.accounting = Accounting(backend=backend.name, model=backend.model)
        self._semaphore = asyncio.Semaphore(max(1, self.config.concurrency))
        self._fatal: FatalError | None = None

    @property
    def model(self) -> str:
        return self.backend.model

    async def complete(self, request: Request) -> Completion:
        """All `request.n` samples, each from the cache when it holds it, else from the backend.

        Raises RequestFailed when the backend still fails after the retries, FatalError when no
        retry could help (the run should stop).
        """
        if self._fatal is not None:
            raise self._fatal
        keys = [self._key(request, request.sample + i) for i in range(request.n)]
        found: dict[str, Completion] = {}
        if self.cache is not None and not self.config.refresh:
            found = self.cache.get_many(keys) if len(keys) > 1 else (
                {keys[0]: c} if (c := self.cache.get(keys[0])) is not None else {})
        self.accounting.cache_hits += len(found)
        samples: dict[int, Completion] = {i: found[k] for i, k in enumerate(keys) if k in found}
        missing = [i for i in range(request.n) if i not in samples]
        if missing:
            fresh = await self._fetch(request, missing)
            for i, completion in fresh.items():
                samples[i] = completion
                if self.cache is not None:
                    self.cache.put(keys[i], completion)
        if request.n == 1:
            return samples[0]
        ordered = [samples[i] for i in range(request.n)]
        return Completion(texts=[c.text for c in ordered],
                          finish_reasons=[(c.finish_reasons or [None])[0] for c in ordered],
                          prompt_tokens=sum(c.prompt_tokens for c in ordered),
                          completion_tokens=sum(c.completion_tokens for c in ordered),
                          model=ordered[0].model, tokens=ordered[0].tokens,
                          token_logprobs=ordered[0].token_logprobs, cached=all(c.cached for c in ordered))

    def _key(self, request: Request, sample: int) -> str:
        b = self.backend
        # `identity` where a backend has one (a local file's path, size and mtime), else the model name.
        return request_key(b.name, getattr(b, "identity", b.model), b.api_base, request, sample)

    async def _fetch(self, request: Request, missing: list[int]) -> dict[int, Completion]:
        if len(missing) > 1 and self.backend.supports_n:
            batch = await self._call(replace(request, n=len(missing), sample=request.sample + missing[0]))
            return {i: _one(batch, j, len(missing)) for j, i in enumerate(missing)}
        # One call per sample; a seed is varied per sample so the samples differ.
        calls = [replace(request, n=1, sample=request.sample + i,
                         seed=None if request.seed is None else request.seed + i) for i in missing]
        results = await asyncio.gather(*(self._call(c) for c in calls), return_exceptions=True)
        fresh: dict[int, Completion] = {}
        failure: BaseException | None = None
        for i, result in zip(missing, results):
            if isinstance(result, BaseException):
                failure = failure or result
            else:
                fresh[i] = result
        if failure is not None:
            # Keep what succeeded: a rerun will not pay for it again.
            if self.cache is not None:
                for i, completion in fresh.items():
                    self.cache.put(self._key(request, request.sample + i), completion)
            raise failure
        return fresh

    async def _call(self, request: Request) -> Completion:
        estimate = estimate_tokens(request)
        attempt = 0
        while True:
            attempt += 1
            await self.limits.acquire(estimate)
            async with self._semaphore:
                if self._fatal is not None:
                    raise self._fatal
                self.accounting.requests += 1
                try:
                    completion = await self.backend.complete(request, timeout=self.config.timeout)
                except RetryableError as exc:
                    error = exc
                except FatalError as exc:
                    self._fatal = exc
                    raise
                except RequestRejected as exc:
                    self.accounting.failures += 1
                    raise RequestFailed(str(exc), attempt) from exc
                else:
                    used = completion.prompt_tokens + completion.completion_tokens
                    self.limits.settle(estimate, used)
                    self.accounting.add_usage(completion.prompt_tokens, completion.completion_tokens)
                    return completion
            if attempt > self.config.max_retries:
                self.accounting.failures += 1
                raise RequestFailed(str(error), attempt)
            self.accounting.retries += 1
            await asyncio.sleep(self._delay(attempt, error.retry_after))

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, max(self.config.backoff_max, 300.0))
        ceiling = min(self.config.backoff_max, self.config.backoff_base * 2 ** (attempt - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)  # exponential, with jitter

    async def aclose(self) -> None:
        try:
            await self.backend.aclose()
        finally:
            if self.cache is not None:
                self.cache.close()


def _one(batch: Completion, j: int, n: int) -> Completion:
    """Sample j of a batched call, with the usage shared out so totals stay right."""
    share = lambda total: total // n + (1 if j < total % n else 0)  # noqa: E731
    return Completion(texts=[batch.texts[j] if j < len(batch.texts) else ""],
                      finish_reasons=[batch.finish_reasons[j] if j < len(batch.finish_reasons) else None],
                      prompt_tokens=share(batch.prompt_tokens), completion_tokens=share(batch.completion_tokens),
                      model=batch.model, tokens=batch.tokens if j == 0 else None,
                      token_logprobs=batch.token_logprobs if j == 0 else None)
