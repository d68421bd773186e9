"""The persistent cache of model answers: SQLite in WAL mode, shared safely by several processes.

Keyed by a hash of everything that changes an answer (backend, model, api base, messages or
prompt, sampling parameters, sample index) and nothing else: not the timeout, the retries or the
concurrency. Every answer is committed as soon as it arrives, so a run killed half-way resumes
without paying again for a call that had succeeded. Keys never include a secret.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sqlite3
import time
from pathlib import Path
from typing import Any

from rubricate.llm.types import Completion, Request


def cache_dir() -> Path:
    """The user's cache folder: $RUBRICATE_CACHE_DIR, else $XDG_CACHE_HOME/rubricate, else ~/.cache."""
    explicit = os.environ.get("RUBRICATE_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "rubricate"


def default_path() -> Path:
    return cache_dir() / "llm-cache.sqlite"


def request_key(backend: str, model: str, api_base: str | None, request: Request, sample: int) -> str:
    """The key of one sample of one request. `n` is not in it: each sample is keyed by its index."""
    fields = request.to_dict()
    fields.pop("n")
    fields["sample"] = sample
    identity = {"backend": backend, "model": model, "api_base": (api_base or "").rstrip("/"),
                "request": fields}
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


class Cache:
    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else default_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: autocommit, each put is its own transaction and durable at once.
        self._db = sqlite3.connect(str(self.path), timeout=60, isolation_level=None,
                                   check_same_thread=False)
        self._db.execute("PRAGMA busy_timeout=60000")
        self._db.execute("PRAGMA synchronous=NORMAL")
        # Switching a new file to WAL takes an exclusive lock that SQLite may refuse at once, without
        # its busy handler, when another process is opening the same new cache: try again briefly.
        for attempt in range(100):
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("CREATE TABLE IF NOT EXISTS completions (key TEXT PRIMARY KEY, "
                                 "value TEXT NOT NULL, created REAL NOT NULL)")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == 99:
                    raise
                time.sleep(0.05 + 0.05 * random.random())

    def get(self, key: str) -> Completion | None:
        row = self._db.execute("SELECT value FROM completions WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        try:
            return Completion.from_dict(json.loads(row[0]), cached=True)
        except (ValueError, TypeError):
            return None  # an entry from an incompatible version: ask again

    def get_many(self, keys: list[str]) -> dict[str, Completion]:
        found: dict[str, Completion] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for key, value in self._db.execute(f"SELECT key, value FROM completions WHERE key IN ({marks})", chunk):
                try:
                    found[key] = Completion.from_dict(json.loads(value), cached=True)
                except (ValueError, TypeError):
                    pass
        return found

    def put(self, key: str, completion: Completion) -> None:
        value = json.dumps(completion.to_dict(), ensure_ascii=False, separators=(",", ":"))
        self._db.execute("INSERT OR REPLACE INTO completions (key, value, created) VALUES (?, ?, ?)",
                         (key, value, time.time()))

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM completions").fetchone()[0]

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "Cache":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
