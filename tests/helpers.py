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
