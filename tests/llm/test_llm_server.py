"""The fake LLM server, driven over HTTP by the real SDKs: what they parse is what a backend gets."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # litellm must not fetch its cost map

import anthropic
import openai
import pytest

from llm_server import FakeLLMServer, token_logprob, tokenize

USER = [{"role": "user", "content": "What is 2 + 2?"}]


@pytest.fixture(scope="module")
def shared_server():
    with FakeLLMServer(slow_seconds=3.0) as server:
        yield server


@pytest.fixture
def server(shared_server):
    shared_server.reset()
    shared_server.latency = 0.0
    yield shared_server
    shared_server.reset()


def run(coro):
    return asyncio.run(coro)


def aopenai(server, **kw) -> openai.AsyncOpenAI:
    kw.setdefault("max_retries", 0)
    return openai.AsyncOpenAI(base_url=server.openai_base, api_key="sk-test", **kw)


def default_reply(messages_or_prompt, sample=0, seed=None) -> str:
    """The server's default reply, recomputed independently of its code."""
    import hashlib

    key = json.dumps(messages_or_prompt, sort_keys=True, ensure_ascii=False)
    digest = hashlib.sha256(key.encode()).hexdigest()
    return f"reply to {digest[:8]} sample {sample}" + (f" seed {seed}" if seed is not None else "")


# -- the tokenizer and the log-probability function ------------------------------------------------


def test_tokenize_covers_the_text_exactly():
    for text in ["", "a", "  lead", "trail  ", "x = 1\n\ny\t=2 ", "émoji 🙂 ok"]:
        assert "".join(tokenize(text)) == text
    assert tokenize("The cat  sat.") == ["The", " cat", "  sat."]


def test_token_logprob_is_deterministic_and_depends_on_all_context():
    base = token_logprob("A long context. " * 50 + "Answer:", " 4")
    assert base == token_logprob("A long context. " * 50 + "Answer:", " 4")
    assert -5.01 <= base <= -0.01
    assert token_logprob("B long context. " + "A long context. " * 49 + "Answer:", " 4") != base
    assert token_logprob("A long context. " * 50 + "Answer:", " 5") != base


# -- OpenAI chat -----------------------------------------------------------------------------------


def test_openai_sync_chat_default_reply_and_usage(server):
    client = openai.OpenAI(base_url=server.openai_base, api_key="sk-test", max_retries=0)
    messages = [{"role": "system", "content": "Be brief."}] + USER
    out = client.chat.completions.create(model="gpt-fake", messages=messages, temperature=0.7, seed=None)
    assert out.model == "gpt-fake" and out.object == "chat.completion"
    choice = out.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == default_reply(messages)
    assert choice.finish_reason == "stop"
    assert out.usage.prompt_tokens == len(tokenize("Be brief.")) + len(tokenize(USER[0]["content"]))
    assert out.usage.completion_tokens == len(tokenize(choice.message.content))
    assert out.usage.total_tokens == out.usage.prompt_tokens + out.usage.completion_tokens
    seen = server.requests[-1]
    assert seen["path"] == "/v1/chat/completions" and seen["json"]["temperature"] == 0.7
    assert seen["headers"]["authorization"] == "Bearer sk-test"
    assert seen["text"] == USER[0]["content"] and seen["system"] == "Be brief."


def test_openai_async_chat_n2_with_logprobs(server):
    async def call():
        async with aopenai(server) as client:
            return await client.chat.completions.create(
                model="m", messages=USER, n=2, logprobs=True, top_logprobs=3, max_tokens=50)

    out = run(call())
    assert [c.index for c in out.choices] == [0, 1]
    texts = [c.message.content for c in out.choices]
    assert texts == [default_reply(USER, 0), default_reply(USER, 1)]
    for choice in out.choices:
        content = choice.logprobs.content
        assert "".join(t.token for t in content) == choice.message.content
        context = ""
        for item in content:
            assert item.logprob == token_logprob(context, item.token)
            assert item.bytes == list(item.token.encode())
            assert len(item.top_logprobs) == 3 and item.top_logprobs[0].token == item.token
            context += item.token
    assert out.usage.completion_tokens == sum(len(tokenize(t)) for t in texts)


def test_seed_and_prompt_change_the_default_reply(server):
    client = openai.OpenAI(base_url=server.openai_base, api_key="sk-test", max_retries=0)
    a = client.chat.completions.create(model="m", messages=USER, seed=1).choices[0].message.content
    b = client.chat.completions.create(model="m", messages=USER, seed=2).choices[0].message.content
    assert a == default_reply(USER, seed=1) and b == default_reply(USER, seed=2)
    other = [{"role": "user", "content": "What is 3 + 3?"}]
    assert client.chat.completions.create(model="m", messages=other).choices[0].message.content != \
        client.chat.completions.create(model="m", messages=USER).choices[0].message.content


def test_chat_prefill_returns_only_the_continuation(server):
    server.script(lambda r: r["prefill"] == "The answer is", lambda r: f" 4 (sample {r['sample']})")
    client = openai.OpenAI(base_url=server.openai_base, api_key="sk-test", max_retries=0)
    messages = USER + [{"role": "assistant", "content": "The answer is"}]
    out = client.chat.completions.create(model="m", messages=messages, n=2)
    assert [c.message.content for c in out.choices] == [" 4 (sample 0)", " 4 (sample 1)"]
    # The default reply continues a prefill too, after a space.
    messages[-1]["content"] = "Well,"
    assert client.chat.completions.create(model="m", messages=messages).choices[0].message.content == \
        " " + default_reply(messages)


def test_stop_and_max_tokens(server):
    server.script("2 + 2", "It is 4. Done. More text")
    client = openai.OpenAI(base_url=server.openai_base, api_key="sk-test", max_retries=0)
    out = client.chat.completions.create(model="m", messages=USER, stop=[" Done", "More"])
    assert (out.choices[0].message.content, out.choices[0].finish_reason) == ("It is 4.", "stop")
    out = client.chat.completions.create(model="m", messages=USER, max_tokens=2)
    assert (out.choices[0].message.content, out.choices[0].finish_reason) == ("It is", "length")
    out = client.chat.completions.create(model="m", messages=USER, max_completion_tokens=3)
    assert (out.choices[0].message.content, out.choices[0].finish_reason) == ("It is 4.", "length")


def test_json_mode_default_reply_is_json(server):
    client = openai.OpenAI(base_url=server.openai_base, api_key="sk-test", max_retries=0)
    out = client.chat.completions.create(model="m", messages=USER, response_format={"type": "json_object"})
    assert json.loads(out.choices[0].message.content) == {"reply": default_reply(USER)}


def test_rules_newest_first_default_setter_and_reset(server):
    server.script("2 + 2", "old")
    server.script("2 + 2", "new")
    server.script(lambda r: "never" in r["text"], "unused")
    client = openai.OpenAI(base_url=server.openai_base, api_key="sk-test", max_retries=0)
    ask = lambda content: client.chat.completions.create(  # noqa: E731
        model="m", messages=[{"role": "user", "content": content}]).choices[0].message.content
    assert ask("What is 2 + 2?") == "new"
    server.default("fallback")
    assert ask("something else") == "fallback"
    server.default(lambda r: r["text"].upper())
    assert ask("shout") == "SHOUT"
    server.reset()
    assert ask("What is 2 + 2?") == default_reply([{"role": "user", "content": "What is 2 + 2?"}])
    assert server.count() == 1 and len(server.requests) == 1


def test_models_list(server):
    client = openai.OpenAI(base_url=server.openai_base, api_key="sk-test", max_retries=0)
    assert [m.id for m in client.models.list()] == ["fake-model"]


def test_openai_rejects_bad_requests_in_its_format(server):
    client = openai.OpenAI(base_url=server.openai_base, api_key="sk-test", max_retries=0)
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="m", messages=[])
    assert err.value.body["type"] == "invalid_request_error" and "messages" in err.value.message
    with pytest.raises(openai.BadRequestError, match="stream"):
        client.chat.completions.create(model="m", messages=USER, stream=True)


# -- OpenAI legacy completions (vLLM) --------------------------------------------------------------


def test_completions_echo_scores_a_given_continuation(server):
    prompt, continuation = "Question: what is 2 + 2?\nAnswer:", " 4, of course."
    client = openai.OpenAI(base_url=server.openai_base, api_key="sk-test", max_retries=0)
    out = client.completions.create(model="m", prompt=prompt + continuation, echo=True, logprobs=1, max_tokens=0)
    choice = out.choices[0]
    lp = choice.logprobs
    assert choice.text == prompt + continuation and choice.finish_reason == "length"
    assert "".join(lp.tokens) == prompt + continuation
    assert lp.token_logprobs[0] is None and lp.top_logprobs[0] is None
    full = prompt + continuation
    for token, offset, value, top in zip(lp.tokens[1:], lp.text_offset[1:], lp.token_logprobs[1:],
                                         lp.top_logprobs[1:]):
        assert full[offset:offset + len(token)] == token
        assert value == token_logprob(full[:offset], token)
        assert top[token] == value
    # What a scorer sums: the continuation's tokens, found by their offsets.
    start = lp.text_offset.index(len(prompt))
    assert "".join(lp.tokens[start:]) == continuation
    assert out.usage.completion_tokens == 0 and out.usage.prompt_tokens == len(lp.tokens)


def test_completions_echo_with_generation_and_sampling(server):
    prompt = "Once upon a time"
    client = openai.OpenAI(base_url=server.openai_base, api_key="sk-test", max_retries=0)
    out = client.completions.create(model="m", prompt=prompt, echo=True, logprobs=2, max_tokens=3, n=2, seed=5)
    for k, choice in enumerate(out.choices):
        generated = " " + default_reply(prompt, k, seed=5)
        expected = "".join(tokenize(generated)[:3])
        assert choice.text == prompt + expected and choice.finish_reason == "length"
        assert "".join(choice.logprobs.tokens) == choice.text
        assert choice.logprobs.token_logprobs[0] is None
        assert choice.logprobs.token_logprobs[-1] == token_logprob(
            choice.text[: choice.logprobs.text_offset[-1]], choice.logprobs.tokens[-1])
        assert len(choice.logprobs.top_logprobs[-1]) == 2
    plain = client.completions.create(model="m", prompt=prompt, logprobs=0, stop="sample")
    assert plain.choices[0].text == " " + default_reply(prompt).split("sample")[0]
    assert plain.choices[0].finish_reason == "stop" and plain.choices[0].logprobs.text_offset[0] == 0


def test_logprob_fn_can_be_replaced(server):
    server.logprob_fn = lambda context, token: -float(len(token))
    try:
        client = openai.OpenAI(base_url=server.openai_base, api_key="sk-test", max_retries=0)
        out = client.completions.create(model="m", prompt="ab cde", echo=True, logprobs=0, max_tokens=0)
        lp = out.choices[0].logprobs
        assert lp.token_logprobs == [None, -4.0]
    finally:
        server.logprob_fn = None


# -- Anthropic -------------------------------------------------------------------------------------


def test_anthropic_messages_with_system_and_prefill(server):
    server.script(lambda r: r["system"] == "Be terse." and r["prefill"] == "The answer is", " 4. Done.")

    async def call():
        async with anthropic.AsyncAnthropic(base_url=server.anthropic_base, api_key="ak", max_retries=0) as client:
            plain = await client.messages.create(
                model="claude-fake", max_tokens=100, system="Be terse.", messages=USER)
            prefilled = await client.messages.create(
                model="claude-fake", max_tokens=100, system="Be terse.",
                extra_body={"temperature": 0.5},  # this SDK has no temperature argument
                messages=USER + [{"role": "assistant", "content": "The answer is"}])
            stopped = await client.messages.create(
                model="claude-fake", max_tokens=100, system=[{"type": "text", "text": "Be terse."}],
                stop_sequences=["Done"], messages=USER + [{"role": "assistant", "content": "The answer is"}])
            short = await client.messages.create(model="claude-fake", max_tokens=2, messages=USER)
            return plain, prefilled, stopped, short

    plain, prefilled, stopped, short = run(call())
    assert plain.type == "message" and plain.role == "assistant" and plain.model == "claude-fake"
    assert plain.content[0].type == "text"
    assert plain.content[0].text == default_reply(["Be terse.", USER])
    assert plain.stop_reason == "end_turn" and plain.stop_sequence is None
    assert plain.usage.input_tokens == len(tokenize("Be terse.")) + len(tokenize(USER[0]["content"]))
    assert plain.usage.output_tokens == len(tokenize(plain.content[0].text))
    assert prefilled.content[0].text == " 4. Done."
    assert stopped.content[0].text == " 4. "
    assert (stopped.stop_reason, stopped.stop_sequence) == ("stop_sequence", "Done")
    assert short.stop_reason == "max_tokens" and len(tokenize(short.content[0].text)) == 2
    headers = server.requests[0]["headers"]
    # This SDK sends the key as a Bearer token; older ones send x-api-key.
    assert "ak" in (headers.get("x-api-key"), headers.get("authorization", "").removeprefix("Bearer "))
    assert "anthropic-version" in headers


def test_anthropic_rejects_trailing_whitespace_prefill_in_its_format(server):
    client = anthropic.Anthropic(base_url=server.anthropic_base, api_key="ak", max_retries=0)
    with pytest.raises(anthropic.BadRequestError) as err:
        client.messages.create(model="c", max_tokens=10, messages=USER + [{"role": "assistant", "content": "So "}])
    assert err.value.body["error"]["type"] == "invalid_request_error"
    assert "trailing whitespace" in err.value.body["error"]["message"]


# -- litellm ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["openai/fake-model", "hosted_vllm/fake-model"])
def test_litellm_acompletion(server, model):
    import litellm  # imported here: it takes seconds, which collecting the suite should not pay

    server.script("2 + 2", "4")
    out = run(litellm.acompletion(model=model, messages=USER, api_base=server.openai_base, api_key="sk-test",
                                  temperature=0.0, max_tokens=20))
    assert out.choices[0].message.content == "4"
    assert out.usage.completion_tokens == 1
    assert server.count("/v1/chat/completions") == 1
    assert server.requests[-1]["json"]["model"] == "fake-model"


# -- faults ----------------------------------------------------------------------------------------

OPENAI_FAULTS = [
    ("429", openai.RateLimitError),
    ("500", openai.InternalServerError),
    ("503", openai.InternalServerError),
    ("401", openai.AuthenticationError),
    ("400", openai.BadRequestError),
    ("drop", openai.APIConnectionError),
    ("truncated", openai.APIConnectionError),
    ("malformed", json.JSONDecodeError),  # the SDK lets the JSON error through
    ("slow", openai.APITimeoutError),
]


@pytest.mark.parametrize("aiohttp_transport", [False, True], ids=["httpx", "aiohttp"])
@pytest.mark.parametrize(("kind", "error"), OPENAI_FAULTS, ids=[k for k, _ in OPENAI_FAULTS])
def test_openai_sees_each_fault_as_its_error(server, kind, error, aiohttp_transport):
    server.slow_seconds = 3.0
    server.fail(kind, retry_after=7 if kind == "429" else None)

    async def call():
        extra = {"http_client": openai.DefaultAioHttpClient()} if aiohttp_transport else {}
        async with aopenai(server, timeout=0.5, **extra) as client:
            with pytest.raises(error) as err:
                await client.chat.completions.create(model="m", messages=USER)
            # The fault was used up: the next request succeeds on the same client.
            ok = await client.chat.completions.create(model="m", messages=USER)
            return err.value, ok

    exc, ok = run(call())
    assert ok.choices[0].message.content == default_reply(USER)
    if kind == "429":
        assert exc.response.headers["retry-after"] == "7"
        assert exc.body["code"] == "rate_limit_exceeded"
    if kind in ("500", "503", "401", "400"):
        assert exc.status_code == int(kind) and "message" in exc.body
    assert server.requests[0]["fault"] == kind and server.requests[1]["fault"] is None


ANTHROPIC_FAULTS = [
    ("401", anthropic.AuthenticationError, "authentication_error"),
    ("429", anthropic.RateLimitError, "rate_limit_error"),
    ("500", anthropic.InternalServerError, "api_error"),
    ("400", anthropic.BadRequestError, "invalid_request_error"),
    ("drop", anthropic.APIConnectionError, None),
    ("slow", anthropic.APITimeoutError, None),
]


@pytest.mark.parametrize(("kind", "error", "error_type"), ANTHROPIC_FAULTS, ids=[k for k, *_ in ANTHROPIC_FAULTS])
def test_anthropic_sees_each_fault_as_its_error(server, kind, error, error_type):
    server.fail(kind, retry_after=3 if kind == "429" else None)

    async def call():
        async with anthropic.AsyncAnthropic(base_url=server.anthropic_base, api_key="ak", max_retries=0,
                                            timeout=0.5) as client:
            with pytest.raises(error) as err:
                await client.messages.create(model="c", max_tokens=10, messages=USER)
            return err.value

    exc = run(call())
    if error_type:
        assert exc.body["type"] == "error" and exc.body["error"]["type"] == error_type
        assert exc.body["error"]["message"]
    if kind == "429":
        assert exc.response.headers["retry-after"] == "3"


def test_faults_follow_times_match_and_order(server):
    server.fail("500", times=2, match="boom")
    server.fail("429", match=lambda r: r["path"] == "/v1/completions")
    client = openai.OpenAI(base_url=server.openai_base, api_key="sk-test", max_retries=0)
    boom = [{"role": "user", "content": "boom now"}]
    assert client.chat.completions.create(model="m", messages=USER).choices  # no match: no fault
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="m", messages=boom)
    assert client.chat.completions.create(model="m", messages=boom).choices  # used up
    with pytest.raises(openai.RateLimitError):
        client.completions.create(model="m", prompt="x")
    assert [r["fault"] for r in server.requests] == [None, "500", "500", None, "429"]
    assert server.count("/v1/chat/completions") == 4
    assert server.count(match="boom") == 3
    assert server.count(match=lambda r: r["fault"] is not None) == 3


def test_sdk_retries_honour_retry_after(server):
    server.fail("429", times=2, retry_after=0.01)
    client = openai.OpenAI(base_url=server.openai_base, api_key="sk-test", max_retries=2)
    started = time.monotonic()
    out = client.chat.completions.create(model="m", messages=USER)
    assert out.choices[0].message.content == default_reply(USER)
    assert time.monotonic() - started < 0.9  # it waited 10 ms twice, not its backoff (over 1 s for two)
    assert server.count() == 3


def test_unknown_fault_kind_is_refused(server):
    with pytest.raises(ValueError):
        server.fail("teapot")


# -- latency, keys, lifecycle ------------------------------------------------------------------------


def test_latency_is_paid_concurrently(server):
    server.latency = 0.3

    async def call():
        async with aopenai(server) as client:
            started = time.monotonic()
            outs = await asyncio.gather(*[
                client.chat.completions.create(model="m", messages=[{"role": "user", "content": str(i)}])
                for i in range(40)])
            return outs, time.monotonic() - started

    outs, elapsed = run(call())
    assert len({o.choices[0].message.content for o in outs}) == 40
    assert 0.3 <= elapsed < 3.0  # one after another would take 12 s


def test_api_key_is_checked_when_set():
    with FakeLLMServer(api_key="right") as server:
        good = openai.OpenAI(base_url=server.openai_base, api_key="right", max_retries=0)
        assert good.chat.completions.create(model="m", messages=USER).choices
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=server.openai_base, api_key="wrong", max_retries=0).chat.completions.create(
                model="m", messages=USER)
        with pytest.raises(anthropic.AuthenticationError):
            anthropic.Anthropic(base_url=server.anthropic_base, api_key="wrong", max_retries=0).messages.create(
                model="c", max_tokens=5, messages=USER)
        assert anthropic.Anthropic(base_url=server.anthropic_base, api_key="right", max_retries=0).messages.create(
            model="c", max_tokens=5, messages=USER).content


def test_record_false_keeps_counts_only():
    with FakeLLMServer(record=False) as server:
        openai.OpenAI(base_url=server.openai_base, api_key="k", max_retries=0).chat.completions.create(
            model="m", messages=USER)
        assert server.count() == 1 and server.count("/v1/chat/completions") == 1 and server.requests == []


def test_stop_with_a_slow_request_in_flight_is_quick():
    server = FakeLLMServer(slow_seconds=30).start()
    server.fail("slow")
    client = openai.OpenAI(base_url=server.openai_base, api_key="k", max_retries=0, timeout=0.3)
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model="m", messages=USER)
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 2


def test_standalone_process_prints_url_and_stops_on_sigterm():
    script = Path(__file__).resolve().parents[1] / "llm_server.py"
    proc = subprocess.Popen([sys.executable, str(script), "--port", "0", "--latency", "0.01", "--no-log"],
                            stdout=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url + "/v1/models", timeout=5) as response:
            assert json.load(response)["data"][0]["id"] == "fake-model"
        out = openai.OpenAI(base_url=url + "/v1", api_key="k", max_retries=0).chat.completions.create(
            model="m", messages=USER)
        assert out.choices[0].message.content == default_reply(USER)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
