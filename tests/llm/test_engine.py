"""The engine with a scripted in-process backend: retries, cache keys, samples, limits, order."""

import asyncio
import json
import time

import pytest

from rubricate.llm.cache import Cache, request_key
from rubricate.llm.engine import Engine, EngineConfig
from rubricate.llm.types import Completion, FatalError, Request, RequestFailed, RetryableError
from rubricate.pipeline import Options, each_async, run


class ScriptedBackend:
    """Answers `echo:<prompt>#<sample>`; `faults` is a list of exceptions to raise first."""

    name = "fake"
    model = "m"
    api_base = None

    def __init__(self, faults=(), supports_n=True, delay=0.0):
        self.faults = list(faults)
        self.supports_n = supports_n
        self.calls: list[Request] = []
        self.delay = delay
        self.closed = False

    async def complete(self, request, *, timeout=None):
        self.calls.append(request)
        if self.delay:
            await asyncio.sleep(self.delay(request) if callable(self.delay) else self.delay)
        if self.faults:
            raise self.faults.pop(0)
        text = request.prompt or request.messages[-1]["content"]
        return Completion(texts=[f"echo:{text}#{request.sample + j}" for j in range(request.n)],
                          finish_reasons=["stop"] * request.n, prompt_tokens=3, completion_tokens=2 * request.n)

    async def aclose(self):
        self.closed = True


def engine(backend, tmp_path, **config):
    config.setdefault("backoff_base", 0.001)
    return Engine(backend, EngineConfig(cache_path=tmp_path / "c.sqlite", **config))


def test_retries_then_succeeds_and_counts(tmp_path):
    backend = ScriptedBackend([RetryableError("429", retry_after=0.01), RetryableError("500")])
    e = engine(backend, tmp_path)
    result = asyncio.run(e.complete(Request(prompt="p")))
    assert result.text == "echo:p#0"
    assert len(backend.calls) == 3
    assert (e.accounting.requests, e.accounting.retries, e.accounting.failures) == (3, 2, 0)


def test_gives_up_after_max_retries(tmp_path):
    backend = ScriptedBackend([RetryableError("503")] * 5)
    e = engine(backend, tmp_path, max_retries=2)
    with pytest.raises(RequestFailed) as err:
        asyncio.run(e.complete(Request(prompt="p")))
    assert err.value.attempts == 3 and "503" in err.value.reason
    assert e.accounting.failures == 1 and len(backend.calls) == 3


def test_fatal_error_stops_every_later_request(tmp_path):
    backend = ScriptedBackend([FatalError("bad key")])
    e = engine(backend, tmp_path)
    with pytest.raises(FatalError):
        asyncio.run(e.complete(Request(prompt="a")))
    with pytest.raises(FatalError):
        asyncio.run(e.complete(Request(prompt="b")))
    assert len(backend.calls) == 1


def test_retry_after_is_honoured(tmp_path):
    backend = ScriptedBackend([RetryableError("429", retry_after=0.3)])
    e = engine(backend, tmp_path, backoff_base=10.0)
    start = time.monotonic()
    asyncio.run(e.complete(Request(prompt="p")))
    waited = time.monotonic() - start
    assert 0.3 <= waited < 5  # the header's delay, not the 10 s backoff base


def test_cache_serves_a_rerun_and_keys_only_what_changes_the_answer(tmp_path):
    backend = ScriptedBackend()
    first = asyncio.run(engine(backend, tmp_path).complete(Request(prompt="p", temperature=0.5)))
    again = engine(backend, tmp_path, timeout=5, max_retries=0, concurrency=1)  # none of these change answers
    second = asyncio.run(again.complete(Request(prompt="p", temperature=0.5)))
    assert second.cached and second.texts == first.texts and len(backend.calls) == 1
    assert again.accounting.cache_hits == 1 and again.accounting.requests == 0
    asyncio.run(engine(backend, tmp_path).complete(Request(prompt="p", temperature=0.7)))
    assert len(backend.calls) == 2
    base = Request(prompt="p")
    keys = {request_key("fake", "m", None, base, 0), request_key("fake", "m", "http://x", base, 0),
            request_key("fake", "m2", None, base, 0), request_key("fake", "m", None, base, 1),
            request_key("other", "m", None, base, 0), request_key("fake", "m", None, Request(prompt="q"), 0)}
    assert len(keys) == 6
    assert request_key("fake", "m", "http://x/", base, 0) == request_key("fake", "m", "http://x", base, 0)


def test_refresh_and_no_cache(tmp_path):
    backend = ScriptedBackend()
    asyncio.run(engine(backend, tmp_path).complete(Request(prompt="p")))
    asyncio.run(engine(backend, tmp_path, refresh=True).complete(Request(prompt="p")))
    asyncio.run(engine(backend, tmp_path, use_cache=False).complete(Request(prompt="p")))
    assert len(backend.calls) == 3


def test_samples_are_cached_one_by_one(tmp_path):
    backend = ScriptedBackend()
    e = engine(backend, tmp_path)
    two = asyncio.run(e.complete(Request(prompt="p", n=2)))
    assert two.texts == ["echo:p#0", "echo:p#1"] and len(backend.calls) == 1
    four = asyncio.run(engine(backend, tmp_path).complete(Request(prompt="p", n=4)))
    assert four.texts[:2] == two.texts
    # Only the two missing samples were asked for, in one batched call starting at sample 2.
    assert (backend.calls[-1].n, backend.calls[-1].sample) == (2, 2)
    assert four.texts[2:] == ["echo:p#2", "echo:p#3"]


def test_backends_without_n_get_one_call_per_sample_with_distinct_seeds(tmp_path):
    backend = ScriptedBackend(supports_n=False)
    result = asyncio.run(engine(backend, tmp_path).complete(Request(prompt="p", n=3, seed=10)))
    assert len(result.texts) == 3 and len(backend.calls) == 3
    assert sorted(c.seed for c in backend.calls) == [10, 11, 12]
    assert all(c.n == 1 for c in backend.calls)


def test_partial_failure_keeps_the_successful_samples(tmp_path):
    backend = ScriptedBackend(supports_n=False)
    backend.faults = []
    e = engine(backend, tmp_path, max_retries=0)

    calls = {"n": 0}
    original = backend.complete

    async def flaky(request, *, timeout=None):
        calls["n"] += 1
        if request.sample == 1:
            raise RetryableError("boom")
        return await original(request, timeout=timeout)

    backend.complete = flaky
    with pytest.raises(RequestFailed):
        asyncio.run(e.complete(Request(prompt="p", n=3)))
    backend.complete = original
    asyncio.run(engine(backend, tmp_path).complete(Request(prompt="p", n=3)))
    assert [c.sample for c in backend.calls[-1:]] == [1]  # samples 0 and 2 came from the cache


def test_concurrency_bound_and_rpm_limit(tmp_path):
    in_flight = {"now": 0, "max": 0}

    class Counting(ScriptedBackend):
        async def complete(self, request, *, timeout=None):
            in_flight["now"] += 1
            in_flight["max"] = max(in_flight["max"], in_flight["now"])
            await asyncio.sleep(0.01)
            in_flight["now"] -= 1
            return await super().complete(request)

    e = engine(Counting(), tmp_path, concurrency=3, use_cache=False)

    async def many():
        return await asyncio.gather(*(e.complete(Request(prompt=str(i))) for i in range(20)))

    asyncio.run(many())
    assert in_flight["max"] == 3
    limited = engine(ScriptedBackend(), tmp_path, rpm=600, use_cache=False)  # 10 per second
    limited.limits.requests.level = 0  # start empty so the rate shows

    async def five():
        return await asyncio.gather(*(limited.complete(Request(prompt=str(i))) for i in range(5)))

    start = time.monotonic()
    asyncio.run(five())
    assert time.monotonic() - start >= 0.4


def test_each_async_keeps_input_order_whatever_finishes_first(tmp_path):
    rows = [{"problem": f"p{i}", "delay": (7 - i) * 0.01} for i in range(8)]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    finished = []

    async def setup():
        return "state"

    async def teardown(state):
        finished.append("closed")

    async def fn(record, state):
        await asyncio.sleep(record["meta"]["delay"])
        finished.append(record["problem"])
        return [record, dict(record, problem=record["problem"] + "'")]

    out = tmp_path / "out.jsonl"
    run(Options(input=str(src), output=str(out)), each_async(fn, window=4, setup=setup, teardown=teardown))
    problems = [json.loads(line)["problem"] for line in out.read_text().splitlines()]
    assert problems == [p for i in range(8) for p in (f"p{i}", f"p{i}'")]
    assert finished[:4] != sorted(finished[:4])  # they did finish out of order
    assert finished[-1] == "closed"


def test_cache_is_shared_between_processes(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "shared.sqlite"
    code = ("import sys; from rubricate.llm.cache import Cache; from rubricate.llm.types import Completion;"
            "c = Cache(sys.argv[1]);"
            "[c.put(f'{sys.argv[2]}-{i}', Completion(texts=[str(i)])) for i in range(200)]")
    # Four processes open the same new file at once: the first-use race is the one that bites.
    procs = [subprocess.Popen([sys.executable, "-c", code, str(path), tag]) for tag in "abcd"]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0, 0]
    with Cache(path) as cache:
        assert len(cache) == 800
        assert cache.get("b-199").texts == ["199"] and cache.get("b-199").cached


def test_tokens_per_minute_limit_waits_for_the_bucket():
    from rubricate.llm.limits import Limits

    async def go():
        limits = Limits(tpm=6000)  # 100 tokens per second
        limits.tokens.level = 0
        start = time.monotonic()
        await limits.acquire(30)
        limits.settle(30, 10)  # the call used fewer tokens than estimated: 20 come back
        await limits.acquire(20)
        return time.monotonic() - start

    waited = asyncio.run(go())
    assert 0.28 <= waited < 0.45  # 0.3 s for the first 30 tokens; the refund covered the next 20


def test_cost_from_the_bundled_price_map():
    from rubricate.llm.accounting import Accounting, price_per_token

    known = price_per_token("openai", "gpt-4o-mini")
    assert known is not None and known[0] > 0 and known[1] > known[0]
    acct = Accounting(backend="openai", model="gpt-4o-mini")
    acct.add_usage(1_000_000, 1_000_000)
    assert acct.finish()["cost_usd"] == pytest.approx(known[0] * 1e6 + known[1] * 1e6)
    assert Accounting(backend="openai", model="my-own-finetune").finish()["cost_usd"] is None
