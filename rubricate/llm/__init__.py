"""The one seam to models. Generators build `Request`s and await `complete()`; an `Engine` adds
concurrency, rate limits, retries, the cache and accounting around one backend module per provider.
Provider SDKs are imported only when a model of theirs is asked for."""

from rubricate.llm.types import Completion, FatalError, Request, RequestFailed, RetryableError, UnsupportedError

__all__ = ["Completion", "FatalError", "Request", "RequestFailed", "RetryableError", "UnsupportedError"]
