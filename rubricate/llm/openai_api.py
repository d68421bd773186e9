"""`openai/<model>`: the OpenAI API and every OpenAI-compatible server (vLLM, SGLang, llama.cpp's
server, Ollama) with `--api-base`, spoken directly over one aiohttp session.

Measured against the SDK (benchmarks/bench_llm.py, 4,000 requests at concurrency 64, 100 ms server
latency): the OpenAI SDK reached 63% of the ideal request rate with its aiohttp transport and 43%
with httpx, a bare aiohttp client 90%. The protocol is two JSON endpoints, so this module speaks it
itself. Raw prompts go to `/v1/completions`, which also gives the log-probabilities of a given
continuation (`echo` + `logprobs`).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from typing import Any

from rubricate.llm.types import (Completion, FatalError, Request, RequestRejected, RetryableError, UnsupportedError,
                                 retry_after_seconds)

KEY_VARIABLE = "OPENAI_API_KEY"
# A request too long for the model is that record's problem, not the run's (OpenAI, vLLM, llama.cpp wording).
_CONTEXT = re.compile(r"context.length|maximum context|context window|too long|exceeds? the|max_model_len", re.I)
DEFAULT_BASE = "https://api.openai.com/v1"


class OpenAIBackend:
    name = "openai"
    supports_n = True

    def __init__(self, model: str, *, api_base: str | None = None, timeout: float = 60.0, concurrency: int = 64):
        self.model = model
        self.api_base = api_base
        key = os.environ.get(KEY_VARIABLE)
        if not key:
            if api_base is None:
                raise FatalError(f"{KEY_VARIABLE} is not set",
                                 hint=f"export {KEY_VARIABLE}=... or pass --api-base for a local server")
            key = "EMPTY"  # local OpenAI-compatible servers accept any key
        self._base = (api_base or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE).rstrip("/")
        self._headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        self._timeout = timeout
        self._concurrency = concurrency
        self._custom_server = api_base is not None
        self._session: Any = None

    def _client(self) -> Any:
        if self._session is None:
            import aiohttp

            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=max(self._concurrency, 1), ttl_dns_cache=300),
                headers=self._headers, json_serialize=json.dumps)
        return self._session

    async def _post(self, path: str, payload: dict[str, Any], timeout: float | None) -> dict[str, Any]:
        import aiohttp

        try:
            async with self._client().post(self._base + path, json=payload,
                                           timeout=aiohttp.ClientTimeout(total=timeout or self._timeout)) as response:
                raw = await response.read()
                status = response.status
                headers = response.headers
        except asyncio.TimeoutError as exc:
            raise RetryableError(f"timed out after {timeout or self._timeout:g} s") from exc
        except aiohttp.ClientError as exc:  # refused, dropped, truncated body
            raise RetryableError(f"connection failed ({type(exc).__name__}: {exc})") from exc
        try:
            data = json.loads(raw)
        except ValueError:
            data = None
        if status >= 400:
            message = _message(data) or raw[:300].decode("utf-8", "replace")
            if status in (408, 409, 429) or status >= 500:
                raise RetryableError(f"HTTP {status}: {message}", status=status,
                                     retry_after=retry_after_seconds(headers))
            if status in (400, 413) and _CONTEXT.search(message):
                raise RequestRejected(f"HTTP {status}: {message}", status=status)  # this record only
            raise FatalError(f"the provider refused the request (HTTP {status}): {message}", status=status)
        if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
            raise RetryableError(f"malformed response (HTTP {status}, {len(raw)} bytes that are not a completion)")
        return data

    async def complete(self, request: Request, *, timeout: float | None = None) -> Completion:
        try:
            if request.is_chat:
                return await self._chat(request, timeout)
            if request.score is not None:
                return await self._score(request, timeout)
            return await self._completion(request, timeout)
        except (KeyError, TypeError, IndexError, AttributeError) as exc:
            # A 200 whose JSON lacks what the protocol promises: the server's fault, worth a retry.
            raise RetryableError(f"malformed response ({type(exc).__name__}: {exc})") from exc

    async def _chat(self, request: Request, timeout: float | None) -> Completion:
        messages = [dict(m) for m in request.messages or ()]
        if request.system:
            messages.insert(0, {"role": "system", "content": request.system})
        payload = {"model": self.model, "messages": messages, **_sampling(request)}
        if request.prefill:
            messages.append({"role": "assistant", "content": request.prefill})
            if self._custom_server:
                # vLLM and SGLang continue the final assistant message instead of starting anew.
                payload.update(continue_final_message=True, add_generation_prompt=False)
        if request.json:
            payload["response_format"] = {"type": "json_object"}
        if request.logprobs:
            payload["logprobs"] = True
        data = await self._post("/chat/completions", payload, timeout)
        choices = sorted(data["choices"], key=lambda c: c.get("index", 0))
        completion = Completion(texts=[(c.get("message") or {}).get("content") or "" for c in choices],
                                finish_reasons=[c.get("finish_reason") for c in choices], model=data.get("model"),
                                **_usage(data))
        content = ((choices[0].get("logprobs") or {}).get("content") if choices and request.logprobs else None)
        if content:
            completion.tokens = [t["token"] for t in content]
            completion.token_logprobs = [float(t["logprob"]) for t in content]
        return completion

    async def _completion(self, request: Request, timeout: float | None) -> Completion:
        payload = {"model": self.model, "prompt": request.prompt, **_sampling(request)}
        if request.logprobs:
            payload["logprobs"] = 1
        data = await self._post("/completions", payload, timeout)
        choices = sorted(data["choices"], key=lambda c: c.get("index", 0))
        completion = Completion(texts=[c.get("text") or "" for c in choices],
                                finish_reasons=[c.get("finish_reason") for c in choices], model=data.get("model"),
                                **_usage(data))
        logprobs = choices[0].get("logprobs") if choices and request.logprobs else None
        if logprobs:
            completion.tokens = list(logprobs.get("tokens") or [])
            completion.token_logprobs = [float(x) if x is not None else float("nan")
                                         for x in logprobs.get("token_logprobs") or []]
        return completion

    async def _score(self, request: Request, timeout: float | None) -> Completion:
        """Log-probabilities of `score` after `prompt`: echo the whole text and keep the tokens that
        end past the boundary (a token straddling it counts with the continuation)."""
        assert request.prompt is not None and request.score is not None
        text = request.prompt + request.score
        payload = {"model": self.model, "prompt": text, "max_tokens": 1, "echo": True, "logprobs": 0,
                   "temperature": 0.0}
        data = await self._post("/completions", payload, timeout)
        lp = data["choices"][0].get("logprobs") if data["choices"] else None
        if not lp or not lp.get("tokens") or lp.get("token_logprobs") is None or lp.get("text_offset") is None:
            raise UnsupportedError(f"{self.api_base or self._base} returned no prompt log-probabilities",
                                   hint="The server must support echo=true with logprobs on /v1/completions "
                                        "(vLLM and llama.cpp's server do; OpenAI's hosted chat models do not).")
        boundary = len(request.prompt)
        tokens, logprobs = [], []
        for token, logprob, offset in zip(lp["tokens"], lp["token_logprobs"], lp["text_offset"]):
            if offset >= len(text):
                break  # the generated token after the echo
            if offset + len(token) > boundary:
                tokens.append(token)
                logprobs.append(float(logprob) if logprob is not None else float("nan"))
        return Completion(texts=[""], finish_reasons=["score"], model=data.get("model"), tokens=tokens,
                          token_logprobs=logprobs, prompt_tokens=_usage(data)["prompt_tokens"])

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _sampling(request: Request) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if request.n != 1:
        params["n"] = request.n
    for name in ("temperature", "top_p", "max_tokens", "seed"):
        value = getattr(request, name)
        if value is not None:
            params[name] = value
    if request.stop:
        params["stop"] = list(request.stop)
    return params


def _usage(data: dict[str, Any]) -> dict[str, int]:
    usage = data.get("usage") or {}
    return {"prompt_tokens": int(usage.get("prompt_tokens") or 0),
            "completion_tokens": int(usage.get("completion_tokens") or 0)}


def _message(data: Any) -> str | None:
    if isinstance(data, dict):
        inner = data.get("error", data)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
        if data.get("message"):
            return str(data["message"])
    return None
