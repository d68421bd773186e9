"""`anthropic/<model>`: the Anthropic SDK. A raw prompt is continued through an assistant prefill;
Anthropic gives no log-probabilities and one sample per call (the engine issues n calls)."""

from __future__ import annotations

import os
from typing import Any

from rubricate.llm.types import (Completion, FatalError, Request, RetryableError, UnsupportedError,
                                 retry_after_seconds)

KEY_VARIABLE = "ANTHROPIC_API_KEY"
DEFAULT_MAX_TOKENS = 4096  # Anthropic requires max_tokens; this is what a request gets without one
CONTINUE = "Continue the following text exactly where it stops. Write only the continuation."


class AnthropicBackend:
    name = "anthropic"
    supports_n = False

    def __init__(self, model: str, *, api_base: str | None = None, timeout: float = 60.0, concurrency: int = 64):
        try:
            import anthropic
        except ImportError as exc:  # pragma: no cover - a dependency
            raise FatalError("the anthropic package is missing", hint="pip install anthropic") from exc
        self.model = model
        self.api_base = api_base
        key = os.environ.get(KEY_VARIABLE)
        if not key:
            if api_base is None:
                raise FatalError(f"{KEY_VARIABLE} is not set", hint=f"export {KEY_VARIABLE}=...")
            key = "EMPTY"
        kwargs: dict[str, Any] = {"api_key": key, "base_url": api_base, "max_retries": 0, "timeout": timeout}
        try:
            kwargs["http_client"] = anthropic.DefaultAioHttpClient(timeout=timeout)
        except (AttributeError, RuntimeError, ImportError):
            pass
        self._anthropic = anthropic
        self._client = anthropic.AsyncAnthropic(**kwargs)

    async def complete(self, request: Request, *, timeout: float | None = None) -> Completion:
        if request.score is not None:
            raise UnsupportedError("anthropic models give no token log-probabilities",
                                   hint="Score with an OpenAI-compatible server (vLLM) or --model local.")
        if request.logprobs:
            raise UnsupportedError("anthropic models give no token log-probabilities")
        if request.n != 1:
            raise UnsupportedError("anthropic returns one sample per call")  # the engine splits n
        messages, system, lost_whitespace = self._messages(request)
        params: dict[str, Any] = {"model": self.model, "messages": messages,
                                  "max_tokens": request.max_tokens or DEFAULT_MAX_TOKENS}
        if system:
            params["system"] = system
        # Recent SDKs no longer type the sampling parameters (newer models refuse them); older
        # models still take them, so they travel in the body when asked for.
        sampling = {k: v for k, v in (("temperature", request.temperature), ("top_p", request.top_p))
                    if v is not None}
        if sampling:
            params["extra_body"] = sampling
        if request.stop:
            params["stop_sequences"] = list(request.stop)
        try:
            response = await self._client.messages.create(timeout=timeout, **params)
        except self._anthropic.APIStatusError as exc:
            raise _status_error(exc) from exc
        except self._anthropic.APITimeoutError as exc:
            raise RetryableError(f"timed out ({exc})") from exc
        except self._anthropic.APIConnectionError as exc:
            raise RetryableError(f"connection failed ({exc.__cause__ or exc})") from exc
        except (self._anthropic.APIResponseValidationError, ValueError) as exc:  # a body that is not JSON
            raise RetryableError(f"malformed response ({type(exc).__name__}: {exc})") from exc
        if not isinstance(response, self._anthropic.types.Message):
            raise RetryableError("malformed response (not a message)")
        text = "".join(block.text for block in response.content if getattr(block, "type", None) == "text")
        return Completion(texts=[lost_whitespace + text], finish_reasons=[response.stop_reason],
                          prompt_tokens=response.usage.input_tokens, completion_tokens=response.usage.output_tokens,
                          model=response.model)

    @staticmethod
    def _messages(request: Request) -> tuple[list[dict[str, str]], str | None, str]:
        """Messages, system prompt, and the whitespace a prefill had to lose (Anthropic refuses a
        final assistant turn that ends in whitespace; it is put back in front of the answer)."""
        if request.is_chat:
            messages = [dict(m) for m in request.messages or ()]
            system = request.system
            if messages and messages[0].get("role") == "system":
                system = "\n\n".join(x for x in (system, messages.pop(0)["content"]) if x)
            prefill = request.prefill
        else:
            messages, system, prefill = [{"role": "user", "content": CONTINUE}], request.system, request.prompt
        tail = ""
        if prefill:
            kept = prefill.rstrip()
            tail = prefill[len(kept):]
            if kept:
                messages.append({"role": "assistant", "content": kept})
        return messages, system, tail

    async def aclose(self) -> None:
        await self._client.close()


def _status_error(exc: Any) -> Exception:
    status = exc.status_code
    body = getattr(exc, "body", None)
    message = str(exc)
    if isinstance(body, dict) and isinstance(body.get("error"), dict) and body["error"].get("message"):
        message = str(body["error"]["message"])
    if status in (408, 409, 429, 529) or status >= 500:
        return RetryableError(f"HTTP {status}: {message}", status=status,
                              retry_after=retry_after_seconds(exc.response.headers))
    return FatalError(f"the provider refused the request (HTTP {status}): {message}", status=status)
