"""Any other provider (`gemini/...`, `bedrock/...`, `together_ai/...`, `hosted_vllm/...`) through
litellm, imported only when such a model is asked for: it takes seconds to import."""

from __future__ import annotations

import os
from typing import Any

from rubricate.llm.types import (Completion, FatalError, Request, RetryableError, UnsupportedError,
                                 retry_after_seconds)


class LiteLLMBackend:
    name = "litellm"
    supports_n = True

    def __init__(self, model: str, *, api_base: str | None = None, timeout: float = 60.0, concurrency: int = 64):
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # never fetch the price map
        try:
            import litellm
        except ImportError as exc:  # pragma: no cover - a dependency
            raise FatalError("the litellm package is missing", hint="pip install litellm") from exc
        self._litellm = litellm
        litellm.suppress_debug_info = True
        litellm.telemetry = False
        self.model = model
        self.api_base = api_base
        self._timeout = timeout
        if api_base is None:
            check = litellm.validate_environment(model=model)
            if not check.get("keys_in_environment", True) and check.get("missing_keys"):
                missing = ", ".join(check["missing_keys"])
                raise FatalError(f"{missing} is not set (needed by {model})", hint=f"export {missing.split(',')[0]}=...")

    async def complete(self, request: Request, *, timeout: float | None = None) -> Completion:
        if request.score is not None:
            raise UnsupportedError("litellm does not give the log-probabilities of a given continuation",
                                   hint="Use openai/<model> with --api-base for an OpenAI-compatible server.")
        params: dict[str, Any] = {"model": self.model, "timeout": timeout or self._timeout, "num_retries": 0}
        if self.api_base:
            params["api_base"] = self.api_base
            params.setdefault("api_key", os.environ.get("OPENAI_API_KEY") or "EMPTY")
        for name in ("temperature", "top_p", "max_tokens", "seed"):
            value = getattr(request, name)
            if value is not None:
                params[name] = value
        if request.stop:
            params["stop"] = list(request.stop)
        if request.n != 1:
            params["n"] = request.n
        try:
            if request.is_chat:
                messages = [dict(m) for m in request.messages or ()]
                if request.system:
                    messages.insert(0, {"role": "system", "content": request.system})
                if request.prefill:
                    messages.append({"role": "assistant", "content": request.prefill})
                if request.json:
                    params["response_format"] = {"type": "json_object"}
                response = await self._litellm.acompletion(messages=messages, **params)
                choices = sorted(response.choices, key=lambda c: c.index)
                texts = [c.message.content or "" for c in choices]
            else:
                response = await self._litellm.atext_completion(prompt=request.prompt, **params)
                choices = sorted(response.choices, key=lambda c: c.index)
                texts = [c.text or "" for c in choices]
        except Exception as exc:  # litellm maps every provider's errors onto its own openai-like types
            raise _map_error(self._litellm, exc) from exc
        usage = getattr(response, "usage", None)
        return Completion(texts=texts, finish_reasons=[getattr(c, "finish_reason", None) for c in choices],
                          prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
                          completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
                          model=getattr(response, "model", None))

    async def aclose(self) -> None:
        return None


def _map_error(litellm: Any, exc: Exception) -> Exception:
    if isinstance(exc, (RetryableError, FatalError)):
        return exc
    status = getattr(exc, "status_code", None)
    message = getattr(exc, "message", None) or str(exc)
    response = getattr(exc, "response", None)
    retry_after = retry_after_seconds(getattr(response, "headers", None)) if response is not None else None
    if isinstance(exc, (litellm.Timeout, litellm.APIConnectionError)) or status in (408, 409, 429) \
            or (isinstance(status, int) and status >= 500):
        return RetryableError(f"HTTP {status}: {message}" if status else message, status=status,
                              retry_after=retry_after)
    if isinstance(status, int) and 400 <= status < 500:
        return FatalError(f"the provider refused the request (HTTP {status}): {message}", status=status)
    return RetryableError(f"{type(exc).__name__}: {message}")
