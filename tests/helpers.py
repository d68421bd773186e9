"""Helpers shared by tests (fixtures live in conftest.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
EXAMPLES = ROOT / "examples"


def run_process(*args: str, stdin: bytes | None = None, cwd: Path = ROOT, **kw) -> subprocess.CompletedProcess:
    """The installed console script in a real process, for pipes, signals and exit codes."""
    return subprocess.run([sys.executable, "-m", "rubricate.cli.main", *args], input=stdin,
                          capture_output=True, cwd=cwd, timeout=120, **kw)


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def through_engine(server, records: list, fn, *, model: str = "openai/fake-model", max_retries: int = 2) -> list:
    """`fn(record, engine)` for every record, through a real engine and backend against the scripted
    server (retries fast, no cache), as a model command would run it."""
    import asyncio

    from rubricate.llm.backends import make_backend
    from rubricate.llm.engine import Engine, EngineConfig

    async def go():
        engine = Engine(make_backend(model, api_base=server.openai_base, timeout=10),
                        EngineConfig(backoff_base=0.01, use_cache=False, max_retries=max_retries), spec=model)
        try:
            return await asyncio.gather(*(fn(record, engine) for record in records))
        finally:
            await engine.aclose()

    return asyncio.run(go())
