"""A real HTTP server that speaks the OpenAI, vLLM-completions and Anthropic protocols, for tests and
benchmarks.

In a test::

    with FakeLLMServer() as server:
        server.script("capital of France", "Paris")
        server.fail("429", times=2, retry_after=0.01)
        client = openai.AsyncOpenAI(base_url=server.openai_base, api_key="x")
        ...
        assert server.count("/v1/chat/completions") == 3

Standalone, for benchmarks (prints its URL as the first line, serves until SIGTERM/SIGINT)::

    python tests/llm_server.py --port 0 --latency 0.1 --no-log

Endpoints: `POST /v1/chat/completions`, `POST /v1/completions` (legacy, with echo and logprobs as
vLLM returns them), `GET /v1/models`, `POST /v1/messages` (Anthropic), `GET /health`.

What it answers:
- A reply is the first scripted rule that matches (newest first), else the default reply,
  "reply to <8 hex of sha256 of the prompt> sample <k>" (plus " seed <s>" when a seed is sent), so
  different prompts, samples (the k-th of n) and seeds differ, deterministically. With a JSON
  response format the default reply is `{"reply": "<that text>"}`. With an assistant prefill, or a
  raw prompt, the reply is the continuation and only the continuation is returned.
- `stop` / `stop_sequences` cut the reply at the first stop string (finish "stop" /
  "stop_sequence"); `max_tokens` cuts it to that many tokens (finish "length" / "max_tokens").
  No max_tokens means no limit (unlike vLLM's legacy default of 16).
- Tokens are `tokenize(text)`: runs of whitespace followed by non-whitespace, so that
  `"".join(tokenize(t)) == t`. Log-probabilities are `token_logprob(context, token)`, where
  context is all the text before the token: for /v1/completions the prompt plus the generated text
  so far, for chat the prefill plus the answer so far. `text_offset` counts characters from the
  start of the returned text (the prompt included with echo), as vLLM does.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import json
import re
import signal
import socket
import threading
import time
from collections import deque
from typing import Any, Callable

from aiohttp import web

Match = str | Callable[[dict], bool] | None
Reply = str | Callable[[dict], str]

CHAT, COMPLETIONS, MESSAGES = "/v1/chat/completions", "/v1/completions", "/v1/messages"
FAULT_KINDS = ("429", "500", "503", "slow", "drop", "malformed", "truncated", "401", "400")

_TOKEN = re.compile(r"\s*\S+|\s+")

# (OpenAI type, OpenAI code, Anthropic type, message) for each error status the server can send.
_ERRORS = {
    400: ("invalid_request_error", None, "invalid_request_error", "invalid request"),
    401: ("invalid_request_error", "invalid_api_key", "authentication_error", "invalid x-api-key"),
    429: ("requests", "rate_limit_exceeded", "rate_limit_error", "rate limit reached"),
    500: ("server_error", None, "api_error", "internal server error"),
    503: ("server_error", None, "overloaded_error", "overloaded"),
}


def tokenize(text: str) -> list[str]:
    """Split `text` into whitespace-led tokens that cover it exactly."""
    return _TOKEN.findall(text)


def token_logprob(context: str, token: str) -> float:
    """The log-probability the server gives `token` after `context` (all the text before it).

    u = the first 8 bytes of sha256(utf8(context) + b"\\x00" + utf8(token)) as a fraction of 2**64;
    logprob = round(-0.01 - 5 * u**2, 6). Deterministic, in [-5.01, -0.01], and any change to the
    context (however far back) or the token changes it.
    """
    digest = hashlib.sha256(context.encode() + b"\x00" + token.encode()).digest()
    return _from_digest(digest)


def _from_digest(digest: bytes) -> float:
    u = int.from_bytes(digest[:8], "big") / 2.0**64
    return round(-0.01 - 5.0 * u * u, 6)


def _logprobs(context: str, tokens: list[str], fn: Callable[[str, str], float] | None) -> list[float]:
    """token_logprob for each token after the text before it, hashing the context only once."""
    if fn is not None:
        out = []
        for token in tokens:
            out.append(fn(context, token))
            context += token
        return out
    running = hashlib.sha256(context.encode())
    out = []
    for token in tokens:
        encoded = token.encode()
        h = running.copy()
        h.update(b"\x00" + encoded)
        out.append(_from_digest(h.digest()))
        running.update(encoded)
    return out


class BadRequest(Exception):
    """A request the real provider would reject with a 400."""


def _text(content: Any) -> str:
    """The text of a message's content: a string, or a list of {"type": "text", "text"} parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    raise BadRequest("message content must be a string or a list of content parts")


def _last_user_text(messages: list) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return _text(message.get("content"))
    return ""


def _digest8(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:8]


def _cut(text: str, stops: list[str], max_tokens: int | None) -> tuple[str, str | None, str]:
    """Apply stop strings then max_tokens: (text, the stop string hit, "stop" | "stop_seq" | "length")."""
    hit, reason = None, "stop"
    if stops:
        at = min(((text.find(s), s) for s in stops if s and s in text), default=None)
        if at is not None:
            text, hit, reason = text[: at[0]], at[1], "stop_seq"
    if max_tokens is not None:
        tokens = tokenize(text)
        if len(tokens) > max_tokens:
            text, hit, reason = "".join(tokens[:max_tokens]), None, "length"
    return text, hit, reason


def _stops(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(s, str) for s in value):
        return value
    raise BadRequest("stop must be a string or a list of strings")


class FakeLLMServer:
    """A local LLM API server on 127.0.0.1 with scripted replies and faults on demand.

    `latency`: seconds every model response waits (asyncio.sleep, so concurrency is unlimited).
    `record`: keep `requests` (the last `max_records`, all when None); counts are kept regardless.
    `api_key`: when set, requests without it (Bearer or x-api-key) get a 401.
    `slow_seconds`: how long a "slow" fault waits before answering.
    `logprob_fn`: replaces `token_logprob` for every log-probability the server returns.
    """

    def __init__(self, *, port: int = 0, latency: float = 0.0, record: bool = True,
                 max_records: int | None = None, api_key: str | None = None,
                 models: tuple[str, ...] = ("fake-model",), slow_seconds: float = 30.0,
                 logprob_fn: Callable[[str, str], float] | None = None):
        self.port = port
        self.latency = latency
        self.record = record
        self.api_key = api_key
        self.models = models
        self.slow_seconds = slow_seconds
        self.logprob_fn = logprob_fn
        self._log: deque[dict] = deque(maxlen=max_records)
        self._counts: dict[str, int] = {}
        self._rules: list[tuple[Match, Reply]] = []
        self._faults: list[dict] = []
        self._default: Reply | None = None
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    # -- what tests call ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_base(self) -> str:
        return self.url + "/v1"

    @property
    def anthropic_base(self) -> str:
        return self.url

    def script(self, match: Match, reply: Reply) -> None:
        """Answer requests that `match` (a substring of the last user message or raw prompt, or a
        callable on the request dict) with `reply` (a string, or a callable on the request dict
        with its "sample" index). Rules added later are tried first."""
        with self._lock:
            self._rules.insert(0, (match, reply))

    def default(self, reply: Reply | None) -> None:
        """Replace the default reply (None restores the prompt-hash one)."""
        self._default = reply

    def fail(self, kind: str, times: int | None = 1, match: Match = None,
             retry_after: float | None = None) -> None:
        """Make the next `times` matching model requests (None: all of them) fail with `kind`:
        "429", "500", "503", "401", "400" (an error in the provider's format; any other status
        code as a string works too), "slow" (wait `slow_seconds`, then answer), "drop" (close the
        connection without a response), "malformed" (200, JSON content type, a body that is not
        JSON), "truncated" (200 announcing the full Content-Length, then half the body, then the
        connection closes). `retry_after` adds a Retry-After header to an error status. Faults are
        used in the order they were added."""
        if kind not in FAULT_KINDS and not (kind.isdigit() and len(kind) == 3):
            raise ValueError(f"unknown fault {kind!r}; one of {', '.join(FAULT_KINDS)}")
        with self._lock:
            self._faults.append({"kind": kind, "times": times, "match": match, "retry_after": retry_after})

    @property
    def requests(self) -> list[dict]:
        """Recorded requests: dicts with path, json, headers (names in lower case), time
        (monotonic), fault, text (the last user message or raw prompt), prefill, system."""
        return list(self._log)

    def count(self, path: str | None = None, match: Match = None) -> int:
        """How many requests reached `path` (all paths when None) and `match`; with `match` it
        counts from `requests`, so needs `record`."""
        if match is None:
            return sum(n for p, n in self._counts.items() if path is None or p == path)
        if not self.record:
            raise ValueError("count(match=...) reads the request log, which record=False turns off")
        return sum(1 for r in self._log if (path is None or r["path"] == path) and _matches(match, r))

    def reset(self) -> None:
        """Forget rules, faults, the default reply, the log and the counts."""
        with self._lock:
            self._rules.clear()
            self._faults.clear()
            self._log.clear()
            self._counts.clear()
            self._default = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> "FakeLLMServer":
        """Serve from a background thread with its own event loop."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="FakeLLMServer", daemon=True)
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self.start_async(), self._loop).result(timeout=30)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self.stop_async(), self._loop).result(timeout=30)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)
            self._loop.close()
            self._loop = self._thread = None

    def __enter__(self) -> "FakeLLMServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def start_async(self) -> None:
        """Start serving on the running loop (what `start` and the standalone mode both use)."""
        app = web.Application(client_max_size=256 * 1024**2)
        app.router.add_post(CHAT, self._chat)
        app.router.add_post(COMPLETIONS, self._completions)
        app.router.add_post(MESSAGES, self._messages)
        app.router.add_get("/v1/models", self._list_models)
        app.router.add_get("/health", self._health)
        # handler_cancellation: a client that gives up on a "slow" request frees its handler.
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=0.25)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock, backlog=1024).start()

    async def stop_async(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- handlers ----------------------------------------------------------------------------

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _list_models(self, request: web.Request) -> web.Response:
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in self.models]
        return web.json_response({"object": "list", "data": data})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, self._parse_chat, self._answer_chat)

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, self._parse_completions, self._answer_completions)

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, self._parse_messages, self._answer_messages)

    async def _serve(self, request: web.Request, parse: Callable, answer: Callable) -> web.StreamResponse:
        path = request.path
        self._counts[path] = self._counts.get(path, 0) + 1
        anthropic = path == MESSAGES
        headers = {k.lower(): v for k, v in request.headers.items()}
        entry: dict[str, Any] = {"path": path, "json": None, "headers": headers, "time": time.monotonic(),
                                 "fault": None, "text": "", "prefill": None, "system": None}
        if self.record:
            self._log.append(entry)
        try:
            body = await request.json()
        except ValueError:
            return _error(anthropic, 400, "the request body is not valid JSON")
        entry["json"] = body
        try:
            if not isinstance(body, dict):
                raise BadRequest("the request body must be a JSON object")
            parse(body, entry)
            if body.get("stream"):
                raise BadRequest("this fake server does not stream; send stream=false")
        except BadRequest as exc:
            return _error(anthropic, 400, str(exc))
        fault = self._take_fault(entry) if self._faults else None
        if fault:
            entry["fault"] = fault["kind"]
        if self.latency:
            await asyncio.sleep(self.latency)
        if self.api_key is not None and not fault and not self._authorized(request):
            return _error(anthropic, 401, "invalid api key")
        if fault:
            kind = fault["kind"]
            if kind == "slow":
                await asyncio.sleep(self.slow_seconds)
            elif kind == "drop":
                request.transport.abort()
                raise asyncio.CancelledError  # nothing is left to answer on
            elif kind.isdigit():
                after = fault["retry_after"]
                headers = {"Retry-After": _number(after)} if after is not None else None
                return _error(anthropic, int(kind), None, headers)
        try:
            payload = answer(body, entry)
        except BadRequest as exc:
            return _error(anthropic, 400, str(exc))
        if fault and fault["kind"] == "malformed":
            return web.Response(body=b"<html><body>502 Bad Gateway</body></html>",
                                content_type="application/json")
        if fault and fault["kind"] == "truncated":
            return await _truncated(request, json.dumps(payload).encode())
        return web.json_response(payload)

    def _authorized(self, request: web.Request) -> bool:
        return self.api_key in (request.headers.get("x-api-key"),
                                request.headers.get("Authorization", "").removeprefix("Bearer "))

    def _take_fault(self, entry: dict) -> dict | None:
        with self._lock:
            for i, fault in enumerate(self._faults):
                if fault["match"] is None or _matches(fault["match"], entry):
                    if fault["times"] is not None:
                        fault["times"] -= 1
                        if fault["times"] <= 0:
                            del self._faults[i]
                    return fault
        return None

    def _reply(self, entry: dict, key: Any, sample: int, seed: Any, json_mode: bool, lead: str = "") -> str:
        """The continuation for one sample: the newest matching rule, else the default (with a
        space first when it continues `lead`, a prompt or prefill, that does not end in one)."""
        reply = None
        if self._rules:
            with self._lock:
                rules = list(self._rules)
            for match, candidate in rules:
                if _matches(match, entry):
                    reply = candidate
                    break
        if reply is None:
            reply = self._default
        if reply is None:
            text = f"reply to {_digest8(key)} sample {sample}" + (f" seed {seed}" if seed is not None else "")
            if json_mode:
                return json.dumps({"reply": text})
            return " " + text if lead and not lead[-1].isspace() else text
        if callable(reply):
            return str(reply({**entry, "sample": sample}))
        return reply

    # -- OpenAI chat ---------------------------------------------------------------------------

    def _parse_chat(self, body: dict, entry: dict) -> None:
        messages = body.get("messages")
        if not body.get("model"):
            raise BadRequest("you must provide a model parameter")
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
            raise BadRequest("messages must be a non-empty list of messages")
        entry["text"] = _last_user_text(messages)
        if messages[-1].get("role") == "assistant":
            entry["prefill"] = _text(messages[-1].get("content"))
        system = [_text(m.get("content")) for m in messages if m.get("role") in ("system", "developer")]
        entry["system"] = "\n".join(system) if system else None

    def _answer_chat(self, body: dict, entry: dict) -> dict:
        messages = body["messages"]
        n = _int(body, "n", 1, low=1)
        max_tokens = _int(body, "max_completion_tokens", None, low=0)
        if max_tokens is None:
            max_tokens = _int(body, "max_tokens", None, low=0)
        temperature = body.get("temperature")
        if temperature is not None and not (isinstance(temperature, (int, float)) and 0 <= temperature <= 2):
            raise BadRequest("temperature must be between 0 and 2")
        stops = _stops(body.get("stop"))
        fmt = body.get("response_format") or {}
        json_mode = isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema")
        top = _int(body, "top_logprobs", 0, low=0) if body.get("logprobs") else None
        prefill = entry["prefill"] or ""
        choices, completion_tokens = [], 0
        for k in range(n):
            raw = self._reply(entry, messages, k, body.get("seed"), json_mode, prefill)
            text, _, reason = _cut(raw, stops, max_tokens)
            tokens = tokenize(text)
            completion_tokens += len(tokens)
            choice = {"index": k, "message": {"role": "assistant", "content": text, "refusal": None},
                      "finish_reason": "length" if reason == "length" else "stop", "logprobs": None}
            if top is not None:
                values = _logprobs(prefill, tokens, self.logprob_fn)
                choice["logprobs"] = {"content": [_chat_logprob(t, lp, top) for t, lp in zip(tokens, values)],
                                      "refusal": None}
            choices.append(choice)
        prompt_tokens = sum(len(tokenize(_text(m.get("content")))) for m in messages)
        return {"id": f"chatcmpl-{next(self._ids)}", "object": "chat.completion", "created": int(time.time()),
                "model": body["model"], "choices": choices, "system_fingerprint": "fake",
                "usage": _usage(prompt_tokens, completion_tokens)}

    # -- OpenAI legacy completions (as vLLM answers them) ----------------------------------------

    def _parse_completions(self, body: dict, entry: dict) -> None:
        prompt = body.get("prompt")
        if not body.get("model"):
            raise BadRequest("you must provide a model parameter")
        if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
            prompt = prompt[0]
        if isinstance(prompt, list):
            raise BadRequest("this server takes one prompt per request, as a string")
        if not isinstance(prompt, str):
            raise BadRequest("prompt must be a string")
        entry["text"] = prompt

    def _answer_completions(self, body: dict, entry: dict) -> dict:
        prompt = entry["text"]
        n = _int(body, "n", 1, low=1)
        max_tokens = _int(body, "max_tokens", None, low=0)
        stops = _stops(body.get("stop"))
        echo = bool(body.get("echo"))
        top = _int(body, "logprobs", None, low=0)
        prompt_tokens = tokenize(prompt)
        prompt_values = None
        if top is not None and echo:
            prompt_values = _logprobs("", prompt_tokens, self.logprob_fn)
            prompt_values[0:1] = [None] * min(1, len(prompt_values))  # nothing comes before the first
        choices, completion_tokens = [], 0
        for k in range(n):
            raw = self._reply(entry, prompt, k, body.get("seed"), False, prompt)
            text, _, reason = _cut(raw, stops, max_tokens)
            if max_tokens == 0:
                reason = "length"
            tokens = tokenize(text)
            completion_tokens += len(tokens)
            choice = {"index": k, "text": prompt + text if echo else text,
                      "finish_reason": "length" if reason == "length" else "stop", "logprobs": None}
            if top is not None:
                values = _logprobs(prompt, tokens, self.logprob_fn)
                if echo:
                    tokens, values = prompt_tokens + tokens, prompt_values + values
                choice["logprobs"] = _completion_logprobs(tokens, values, top)
            choices.append(choice)
        return {"id": f"cmpl-{next(self._ids)}", "object": "text_completion", "created": int(time.time()),
                "model": body["model"], "choices": choices,
                "usage": _usage(len(prompt_tokens), completion_tokens)}

    # -- Anthropic messages --------------------------------------------------------------------

    def _parse_messages(self, body: dict, entry: dict) -> None:
        messages = body.get("messages")
        if not body.get("model"):
            raise BadRequest("model: Field required")
        if not isinstance(body.get("max_tokens"), int) or body["max_tokens"] < 1:
            raise BadRequest("max_tokens: Field required (a positive integer)")
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
            raise BadRequest("messages: at least one message is required")
        entry["text"] = _last_user_text(messages)
        if messages[-1].get("role") == "assistant":
            prefill = _text(messages[-1].get("content"))
            if prefill != prefill.rstrip():
                raise BadRequest("messages: final assistant content cannot end with trailing whitespace")
            entry["prefill"] = prefill
        if body.get("system") is not None:
            entry["system"] = _text(body["system"])

    def _answer_messages(self, body: dict, entry: dict) -> dict:
        temperature = body.get("temperature")
        if temperature is not None and not (isinstance(temperature, (int, float)) and 0 <= temperature <= 1):
            raise BadRequest("temperature: Input should be less than or equal to 1")
        stops = _stops(body.get("stop_sequences"))
        key = [entry["system"], body["messages"]]
        raw = self._reply(entry, key, 0, None, False, entry["prefill"] or "")
        text, hit, reason = _cut(raw, stops, body["max_tokens"])
        input_tokens = len(tokenize(entry["system"] or "")) + sum(
            len(tokenize(_text(m.get("content")))) for m in body["messages"])
        stop_reason = {"stop": "end_turn", "stop_seq": "stop_sequence", "length": "max_tokens"}[reason]
        return {"id": f"msg_{next(self._ids):024d}", "type": "message", "role": "assistant",
                "content": [{"type": "text", "text": text}], "model": body["model"],
                "stop_reason": stop_reason, "stop_sequence": hit,
                "usage": {"input_tokens": input_tokens, "output_tokens": len(tokenize(text))}}


def _matches(match: Match, entry: dict) -> bool:
    if match is None:
        return True
    if callable(match):
        return bool(match(entry))
    return match in entry["text"]


def _int(body: dict, name: str, default: int | None, low: int) -> int | None:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise BadRequest(f"{name} must be an integer >= {low}")
    return value


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def _alternatives(token: str, logprob: float, top: int) -> list[tuple[str, float]]:
    """The token itself, then made-up, less likely alternatives: `top` entries at least one."""
    return [(token, logprob)] + [(f"<alt{i}>", round(logprob - i, 6)) for i in range(1, top)]


def _chat_logprob(token: str, logprob: float, top: int) -> dict:
    return {"token": token, "logprob": logprob, "bytes": list(token.encode()),
            "top_logprobs": [{"token": t, "logprob": lp, "bytes": list(t.encode())}
                             for t, lp in _alternatives(token, logprob, top)] if top else []}


def _completion_logprobs(tokens: list[str], values: list[float | None], top: int) -> dict:
    offsets, at = [], 0
    for token in tokens:
        offsets.append(at)
        at += len(token)
    tops = [None if lp is None else dict(_alternatives(t, lp, top)) for t, lp in zip(tokens, values)]
    return {"tokens": tokens, "token_logprobs": values, "text_offset": offsets, "top_logprobs": tops}


def _error(anthropic: bool, status: int, message: str | None, headers: dict | None = None) -> web.Response:
    openai_type, code, anthropic_type, default = _ERRORS.get(status, ("api_error", None, "api_error", "error"))
    message = message or default
    if anthropic:
        body = {"type": "error", "error": {"type": anthropic_type, "message": message}}
    else:
        body = {"error": {"message": message, "type": openai_type, "param": None, "code": code}}
    return web.json_response(body, status=status, headers=headers)


async def _truncated(request: web.Request, body: bytes) -> web.StreamResponse:
    """Announce the whole body, send half of it, and close the connection."""
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    response.content_length = len(body)
    await response.prepare(request)
    await response.write(body[: len(body) // 2])
    request.transport.close()  # close() (not abort()) so the half already written goes out first
    raise asyncio.CancelledError


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the fake LLM API on 127.0.0.1 until SIGTERM/SIGINT.")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds every model response waits")
    parser.add_argument("--no-log", action="store_true", help="keep no request log (counts only)")
    parser.add_argument("--api-key", default=None, help="require this key")
    args = parser.parse_args(argv)
    server = FakeLLMServer(port=args.port, latency=args.latency, record=not args.no_log,
                           max_records=10_000, api_key=args.api_key)

    async def serve() -> None:
        stopped = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopped.set)
        await server.start_async()
        print(server.url, flush=True)
        await stopped.wait()
        await server.stop_async()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
