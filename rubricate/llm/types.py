"""The small request/response types every backend speaks, and the two errors they raise."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Protocol

from rubricate.errors import EXIT_FAILURE, RubricateError


@dataclass(frozen=True)
class Request:
    """One call to a model: chat `messages`, or a raw `prompt` to continue.

    `score`: with `prompt`, ask for the token log-probabilities of this continuation of the prompt
    (echo + logprobs on OpenAI-compatible completions, logits_all in llama.cpp) instead of sampling.
    `prefill`: with `messages`, text the assistant's answer must start with (Anthropic prefill; on
    chat servers it is sent as a trailing assistant message).
    `sample`: which of several independent samples this is; part of the cache key so sample 3 of a
    rerun is served from the cache as sample 3.
    """

    messages: tuple[dict[str, str], ...] | None = None
    prompt: str | None = None
    prefill: str | None = None
    system: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: tuple[str, ...] | None = None
    seed: int | None = None
    n: int = 1
    json: bool = False
    logprobs: bool = False
    score: str | None = None
    sample: int = 0

    def __post_init__(self) -> None:
        if (self.messages is None) == (self.prompt is None):
            raise ValueError("a Request has either messages or a prompt")
        if self.score is not None and self.prompt is None:
            raise ValueError("score needs a raw prompt")
        if self.n < 1:
            raise ValueError("n must be at least 1")
        if isinstance(self.messages, list):
            object.__setattr__(self, "messages", tuple(self.messages))
        if isinstance(self.stop, list):
            object.__setattr__(self, "stop", tuple(self.stop))

    @property
    def is_chat(self) -> bool:
        return self.messages is not None

    def to_dict(self) -> dict[str, Any]:
        # By hand: dataclasses.asdict deep-copies and costs more than the HTTP call on a cache hit.
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        data["messages"] = [dict(m) for m in self.messages] if self.messages is not None else None
        data["stop"] = list(self.stop) if self.stop is not None else None
        return data


@dataclass
class Completion:
    """What came back: one text per sample, token counts, and log-probabilities when asked."""

    texts: list[str]
    finish_reasons: list[str | None] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model: str | None = None
    # For `score` requests: the continuation's tokens and their log-probabilities (first text only
    # for sampling requests with `logprobs`).
    tokens: list[str] | None = None
    token_logprobs: list[float] | None = None
    cached: bool = False

    @property
    def text(self) -> str:
        return self.texts[0] if self.texts else ""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("cached")
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, cached: bool = False) -> "Completion":
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__ and k != "cached"},
                   cached=cached)


class RetryableError(Exception):
    """A failure worth another try: 429, 5xx, a timeout, a dropped connection, a truncated body."""

    def __init__(self, message: str, *, retry_after: float | None = None, status: int | None = None):
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status


class FatalError(RubricateError):
    """A failure no retry can fix (authentication, a rejected request, a missing key): it stops the
    run with the provider's own message."""

    exit_code = EXIT_FAILURE

    def __init__(self, message: str, hint: str | None = None, *, status: int | None = None):
        super().__init__(message, hint)
        self.status = status


class RequestRejected(Exception):
    """The provider refused this one request (a prompt longer than the context window): no retry
    can help, but other records may well succeed, so the record keeps the error and the run goes on."""

    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(message)
        self.status = status


class RequestFailed(Exception):
    """A request that still failed after its retries; the record keeps it as an `error`."""

    def __init__(self, reason: str, attempts: int):
        super().__init__(reason)
        self.reason = reason
        self.attempts = attempts


class UnsupportedError(FatalError):
    """The backend cannot do what the request asks (e.g. logprobs of a given continuation)."""


class Backend(Protocol):
    """One provider. `complete` raises RetryableError / FatalError, never a provider's own type."""

    name: str  # openai, anthropic, litellm, local
    model: str  # the model as the provider names it
    api_base: str | None
    supports_n: bool

    async def complete(self, request: Request, *, timeout: float | None = None) -> Completion: ...

    async def aclose(self) -> None: ...


def failure(exc: Exception) -> dict[str, Any]:
    """The `error` a record keeps when its model call could not be made or answered: the reason and
    the attempts. A FatalError is raised again instead: no record can succeed, so the run stops."""
    if isinstance(exc, FatalError):
        raise exc
    if isinstance(exc, RequestFailed):
        return {"reason": exc.reason, "raw": None, "attempts": exc.attempts}
    return {"reason": getattr(exc, "message", str(exc)), "raw": None, "attempts": 0}


def retry_after_seconds(headers: Mapping[str, str] | None) -> float | None:
    """Seconds a `Retry-After` (or `retry-after-ms`) header asks for; None when absent or unreadable."""
    if not headers:
        return None
    try:
        ms = headers.get("retry-after-ms")
        if ms is not None:
            return max(0.0, float(ms) / 1000)
        value = headers.get("retry-after")
        if value is None:
            return None
        return max(0.0, float(value))
    except (TypeError, ValueError):
        try:
            from email.utils import parsedate_to_datetime
            import time

            return max(0.0, parsedate_to_datetime(headers["retry-after"]).timestamp() - time.time())
        except (TypeError, ValueError, KeyError):
            return None
