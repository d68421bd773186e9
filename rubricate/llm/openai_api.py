"""`openai/<model>`: the OpenAI SDK, over its aiohttp transport when available.

With `--api-base` the same path serves any OpenAI-compatible server (vLLM, SGLang, llama.cpp's
server, Ollama): raw prompts go to `/v1/completions`, which also gives the log-probabilities of a
given continuation (`echo` + `logprobs`).
"""

from __future__ import annotations

import os
from typing import Any

from rubricate.llm.types import (Completion, FatalError, Request, RetryableError, UnsupportedError,
                                 retry_after_seconds)

KEY_VARIABLE = "OPENAI_API_KEY"


class OpenAIBackend:
    name = "openai"
    supports_n = True

    def __init__(self, model: str, *, api_base: str | None = None, timeout: float = 60.0,
                 concurrency: int = 64):
        try:
            import openai
        except ImportError as exc:  # pragma: no cover - a dependency
            raise FatalError("the openai package is missing", hint="pip install 'openai[aiohttp]'") from exc
        self.model = model
        self.api_base = api_base
        key = os.environ.get(KEY_VARIABLE)
        if not key:
            if api_base is None:
                raise FatalError(f"{KEY_VARIABLE} is not set",
                                 hint=f"export {KEY_VARIABLE}=... or pass --api-base for a local server")
            key = "EMPTY"  # local OpenAI-compatible servers accept any key
        kwargs: dict[str, Any] = {"api_key": key, "base_url": api_base, "max_retries": 0, "timeout": timeout}
        try:
            # The aiohttp transport measured faster than httpx at high concurrency (benchmarks/).
            kwargs["http_client"] = openai.DefaultAioHttpClient(timeout=timeout)
        except (AttributeError, RuntimeError, ImportError):
            pass
        self._openai = openai
        self._client = openai.AsyncOpenAI(**kwargs)
        self._custom_server = api_base is not None

    async def complete(self, request: Request, *, timeout: float | None = None) -> Completion:
        try:
            if request.is_chat:
                return await self._chat(request, timeout)
            return await self._completion(request, timeout)
        except self._openai.APIStatusError as exc:
            raise _status_error(exc) from exc
        except self._openai.APITimeoutError as exc:
            raise RetryableError(f"timed out ({exc})") from exc
        except self._openai.APIConnectionError as exc:
            raise RetryableError(f"connection failed ({exc.__cause__ or exc})") from exc
        except (self._openai.APIResponseValidationError, ValueError) as exc:  # a body that is not JSON
            raise RetryableError(f"malformed response ({type(exc).__name__}: {exc})") from exc

    async def _chat(self, request: Request, timeout: float | None) -> Completion:
        messages = list(request.messages or ())
        if request.system:
            messages.insert(0, {"role": "system", "content": request.system})
        extra_body: dict[str, Any] = {}
        if request.prefill:
            messages.append({"role": "assistant", "content": request.prefill})
            if self._custom_server:
                # vLLM and SGLang continue the final assistant message instead of starting anew.
                extra_body = {"continue_final_message": True, "add_generation_prompt": False}
        params = _sampling(request)
        if request.json:
            params["response_format"] = {"type": "json_object"}
        if request.logprobs:
            params["logprobs"] = True
        response = await self._client.chat.completions.create(
            model=self.model, messages=messages, n=request.n, timeout=timeout,
            extra_body=extra_body or None, **params)
        if not isinstance(response, self._openai.types.chat.ChatCompletion):
            raise RetryableError("malformed response (not a chat completion)")
        choices = sorted(response.choices, key=lambda c: c.index)
        texts = [c.message.content or "" for c in choices]
        completion = Completion(texts=texts, finish_reasons=[c.finish_reason for c in choices],
                                prompt_tokens=_usage(response, "prompt_tokens"),
                                completion_tokens=_usage(response, "completion_tokens"), model=response.model)
        if request.logprobs and choices and choices[0].logprobs and choices[0].logprobs.content:
            completion.tokens = [t.token for t in choices[0].logprobs.content]
            completion.token_logprobs = [t.logprob for t in choices[0].logprobs.content]
        return completion

    async def _completion(self, request: Request, timeout: float | None) -> Completion:
        assert request.prompt is not None
        if request.score is not None:
            return await self._score(request, timeout)
        params = _sampling(request)
        if request.logprobs:
            params["logprobs"] = 1
        response = await self._client.completions.create(model=self.model, prompt=request.prompt, n=request.n,
                                                         timeout=timeout, **params)
        if not isinstance(response, self._openai.types.Completion):
            raise RetryableError("malformed response (not a completion)")
        choices = sorted(response.choices, key=lambda c: c.index)
        completion = Completion(texts=[c.text for c in choices], finish_reasons=[c.finish_reason for c in choices],
                                prompt_tokens=_usage(response, "prompt_tokens"),
                                completion_tokens=_usage(response, "completion_tokens"), model=response.model)
        if request.logprobs and choices and choices[0].logprobs:
            completion.tokens = list(choices[0].logprobs.tokens or [])
            completion.token_logprobs = [float(x) if x is not None else None  # type: ignore[misc]
                                         for x in (choices[0].logprobs.token_logprobs or [])]
        return completion

    async def _score(self, request: Request, timeout: float | None) -> Completion:
        """Log-probabilities of `score` after `prompt`: echo the whole text, keep the tokens that
        start at or after the boundary (a token straddling it counts with the continuation)."""
        assert request.prompt is not None and request.score is not None
        text = request.prompt + request.score
        response = await self._client.completions.create(model=self.model, prompt=text, max_tokens=1, echo=True,
                                                         logprobs=0, temperature=0.0, timeout=timeout)
        if not isinstance(response, self._openai.types.Completion) or not response.choices:
            raise RetryableError("malformed response (not a completion)")
        lp = response.choices[0].logprobs
        if lp is None or not lp.tokens or lp.token_logprobs is None or lp.text_offset is None:
            raise UnsupportedError(f"{self.api_base or 'the server'} returned no prompt log-probabilities",
                                   hint="The server must support echo=true with logprobs on /v1/completions "
                                        "(vLLM does; OpenAI's hosted chat models do not).")
        boundary = len(request.prompt)
        tokens, logprobs = [], []
        for token, logprob, offset in zip(lp.tokens, lp.token_logprobs, lp.text_offset):
            end = offset + len(token)
            if offset >= len(text):
                break  # the generated token after the echo
            if end > boundary:
                tokens.append(token)
                logprobs.append(float(logprob) if logprob is not None else float("nan"))
        return Completion(texts=[""], finish_reasons=["score"], prompt_tokens=_usage(response, "prompt_tokens"),
                          completion_tokens=0, model=response.model, tokens=tokens, token_logprobs=logprobs)

    async def aclose(self) -> None:
        await self._client.close()


def _sampling(request: Request) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name in ("temperature", "top_p", "max_tokens", "seed"):
        value = getattr(request, name)
        if value is not None:
            params[name] = value
    if request.stop:
        params["stop"] = list(request.stop)
    return params


def _usage(response: Any, field: str) -> int:
    usage = getattr(response, "usage", None)
    return int(getattr(usage, field, 0) or 0) if usage is not None else 0


def _status_error(exc: Any) -> Exception:
    status = exc.status_code
    message = _provider_message(exc)
    if status in (408, 409, 429) or status >= 500:
        return RetryableError(f"HTTP {status}: {message}", status=status,
                              retry_after=retry_after_seconds(exc.response.headers))
    return FatalError(f"the provider refused the request (HTTP {status}): {message}", status=status)


def _provider_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
        if body.get("message"):
            return str(body["message"])
    return str(getattr(exc, "message", exc))
