"""Each backend drives its real SDK over real HTTP against the scripted server, through the engine."""

import asyncio
import math

import pytest

from llm_server import token_logprob, tokenize
from rubricate.llm.backends import make_backend, parse_model
from rubricate.llm.engine import Engine, EngineConfig
from rubricate.llm.types import FatalError, Request, RequestFailed, UnsupportedError
from rubricate.errors import UsageError


def run_engine(spec, server, requests, *, api_base="openai", **config):
    base = {"openai": server.openai_base, "anthropic": server.anthropic_base, None: None}[api_base]
    config.setdefault("backoff_base", 0.01)
    config.setdefault("use_cache", False)

    async def go():
        engine = Engine(make_backend(spec, api_base=base, timeout=config.get("timeout", 10)), EngineConfig(**config))
        try:
            return await asyncio.gather(*(engine.complete(r) for r in requests)), engine.accounting
        finally:
            await engine.aclose()

    return asyncio.run(go())


def test_parse_model():
    assert parse_model("openai/gpt-4o-mini") == ("openai", "gpt-4o-mini")
    assert parse_model("anthropic/claude-x") == ("anthropic", "claude-x")
    assert parse_model("gemini/gemini-2.0-flash") == ("litellm", "gemini/gemini-2.0-flash")
    assert parse_model("local") == ("local", "") and parse_model("local:/m.gguf") == ("local", "/m.gguf")
    with pytest.raises(UsageError, match="say which provider"):
        parse_model("gpt-4o")


def test_openai_chat_with_samples_json_and_prefill(llm_server):
    llm_server.script("capital of France", "Paris")
    (one, many), acct = run_engine("openai/fake-model", llm_server, [
        Request(messages=[{"role": "user", "content": "capital of France?"}], system="be brief"),
        Request(messages=[{"role": "user", "content": "count"}], n=3, temperature=1.0)])
    assert one.text == "Paris" and one.prompt_tokens > 0 and one.completion_tokens == 1
    assert len(set(many.texts)) == 3
    sent = [r for r in llm_server.requests if r["text"] == "capital of France?"][0]
    assert sent["json"]["messages"][0] == {"role": "system", "content": "be brief"}
    assert {k.lower(): v for k, v in sent["headers"].items()}["authorization"] == "Bearer sk-test-openai-key-0123456789"
    assert acct.requests == 2 and acct.prompt_tokens > 0
    (prefilled,), _ = run_engine("openai/fake-model", llm_server, [
        Request(messages=[{"role": "user", "content": "q"}], prefill="Step 1:")])
    body = llm_server.requests[-1]["json"]
    assert body["messages"][-1] == {"role": "assistant", "content": "Step 1:"}
    assert body["continue_final_message"] is True  # custom server: vLLM's continuation flags
    assert prefilled.text  # the continuation only


def test_openai_raw_completion_and_score(llm_server):
    prompt, continuation = "Q: 2+2?\nA: Let us add.", " Two plus two is 4."
    (gen, scored), _ = run_engine("openai/fake-model", llm_server, [
        Request(prompt=prompt, max_tokens=5, logprobs=True), Request(prompt=prompt, score=continuation)])
    assert gen.text and gen.tokens and len(gen.token_logprobs) == len(gen.tokens)
    assert "".join(scored.tokens) == continuation
    expected = []
    context = prompt
    for token in tokenize(continuation):
        expected.append(token_logprob(context, token))
        context += token
    assert scored.token_logprobs == pytest.approx(expected)
    assert all(math.isfinite(x) and x < 0 for x in scored.token_logprobs)


def test_anthropic_messages_prefill_and_raw_prompt(llm_server):
    llm_server.script("hello", "Hi there")
    (chat, raw), acct = run_engine("anthropic/claude-test", llm_server, [
        Request(messages=[{"role": "system", "content": "sys"}, {"role": "user", "content": "hello"}],
                max_tokens=50, temperature=0.0),
        Request(prompt="The partial solution so far ", max_tokens=20)], api_base="anthropic")
    assert chat.text == "Hi there"
    first = [r for r in llm_server.requests if r["path"] == "/v1/messages"][0]
    headers = {k.lower(): v for k, v in first["headers"].items()}
    assert first["json"]["system"] == "sys" and first["json"]["temperature"] == 0.0
    assert "sk-ant-test-key-0123456789" in (headers.get("x-api-key", "") + headers.get("authorization", ""))
    last = [r for r in llm_server.requests if r["path"] == "/v1/messages"][-1]["json"]
    # A raw prompt is an assistant prefill, without the trailing whitespace Anthropic refuses...
    assert last["messages"][-1] == {"role": "assistant", "content": "The partial solution so far"}
    assert raw.text.startswith(" ")  # ...which is put back in front of the continuation
    assert acct.prompt_tokens > 0
    with pytest.raises(UnsupportedError, match="log-probabilities"):
        run_engine("anthropic/claude-test", llm_server, [Request(prompt="a", score="b")], api_base="anthropic")


def test_anthropic_samples_are_separate_calls(llm_server):
    (result,), acct = run_engine("anthropic/claude-test", llm_server,
                                 [Request(messages=[{"role": "user", "content": "x"}], n=3, max_tokens=9)],
                                 api_base="anthropic")
    assert len(result.texts) == 3 and acct.requests == 3
    assert llm_server.count("/v1/messages") == 3


def test_litellm_provider_path(llm_server):
    llm_server.script("ping", "pong")
    (chat, text), acct = run_engine("hosted_vllm/fake-model", llm_server, [
        Request(messages=[{"role": "user", "content": "ping"}]), Request(prompt="ping", max_tokens=3)])
    assert chat.text == "pong" and text.text == "pong"
    assert llm_server.count("/v1/chat/completions") == 1 and llm_server.count("/v1/completions") == 1
    assert acct.prompt_tokens > 0


@pytest.mark.parametrize("spec,base", [("openai/fake-model", "openai"), ("anthropic/claude-test", "anthropic"),
                                       ("hosted_vllm/fake-model", "openai")])
@pytest.mark.parametrize("fault", ["429", "500", "503", "drop", "malformed", "truncated", "slow"])
def test_every_fault_is_retried_through_every_sdk(llm_server, spec, base, fault):
    if fault == "slow":
        llm_server.slow_seconds = 3
    llm_server.fail(fault, times=2, retry_after=0.05 if fault == "429" else None)
    (result,), acct = run_engine(spec, llm_server, [Request(messages=[{"role": "user", "content": "x"}],
                                                            max_tokens=8)],
                                 api_base=base, timeout=1.0 if fault == "slow" else 10)
    assert result.text
    assert acct.retries == 2 and acct.failures == 0


@pytest.mark.parametrize("spec,base", [("openai/fake-model", "openai"), ("anthropic/claude-test", "anthropic"),
                                       ("hosted_vllm/fake-model", "openai")])
@pytest.mark.parametrize("fault", ["401", "400"])
def test_auth_and_validation_errors_stop_without_retry(llm_server, spec, base, fault):
    llm_server.fail(fault, times=None)
    with pytest.raises(FatalError) as err:
        run_engine(spec, llm_server, [Request(messages=[{"role": "user", "content": "x"}], max_tokens=8)],
                   api_base=base)
    assert fault in str(err.value)
    assert llm_server.count() == 1


def test_gives_up_after_retries_with_the_reason(llm_server):
    llm_server.fail("503", times=None)
    with pytest.raises(RequestFailed) as err:
        run_engine("openai/fake-model", llm_server, [Request(prompt="x")], max_retries=2)
    assert err.value.attempts == 3 and "503" in err.value.reason
    assert llm_server.count() == 3


def test_missing_key_names_the_variable(llm_server, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    with pytest.raises(FatalError, match="^OPENAI_API_KEY is not set$"):
        make_backend("openai/gpt-4o-mini")
    with pytest.raises(FatalError, match="^ANTHROPIC_API_KEY is not set$"):
        make_backend("anthropic/claude-x")
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    with pytest.raises(FatalError, match="GEMINI_API_KEY"):
        make_backend("gemini/gemini-2.0-flash")
    # A local OpenAI-compatible server needs no key.
    assert make_backend("openai/m", api_base=llm_server.openai_base).api_base == llm_server.openai_base


def test_json_mode_reaches_the_server(llm_server):
    (result,), _ = run_engine("openai/fake-model", llm_server,
                              [Request(messages=[{"role": "user", "content": "give json"}], json=True)])
    import json as _json

    assert "reply" in _json.loads(result.text)
    assert llm_server.requests[-1]["json"]["response_format"] == {"type": "json_object"}


def test_context_length_errors_are_per_record(llm_server, monkeypatch):
    from rubricate.llm import openai_api

    async def refuse(self, path, payload, timeout):
        from rubricate.llm.types import RequestRejected
        raise RequestRejected("HTTP 400: This model's maximum context length is 8192 tokens", status=400)

    backend = make_backend("openai/fake-model", api_base=llm_server.openai_base)
    assert openai_api._CONTEXT.search("This model's maximum context length is 8192 tokens. However, you requested")
    assert openai_api._CONTEXT.search("prompt is too long")
    assert not openai_api._CONTEXT.search("invalid api key")
    monkeypatch.setattr(openai_api.OpenAIBackend, "_post", refuse)
    engine = Engine(backend, EngineConfig(use_cache=False))

    async def go():
        with pytest.raises(RequestFailed) as err:
            await engine.complete(Request(prompt="long"))
        assert "maximum context length" in err.value.reason and err.value.attempts == 1
        # ...and the run is not stopped: the next request is still made.
        with pytest.raises(RequestFailed):
            await engine.complete(Request(prompt="next"))
        await engine.aclose()

    asyncio.run(go())
    assert engine.accounting.failures == 2 and engine.accounting.retries == 0
