"""Generators: one module per kind of feedback. Each has `KIND` (what it writes), `REQUIRES` (the
record fields it needs) and a function that enriches one record.

The registry below is the mechanism: a new generator is a module, its schema, and one line here.
Modules are imported only when a command asks for them.
"""

from __future__ import annotations

import importlib
from types import ModuleType

GENERATORS: dict[str, str] = {
    "steps": "rubricate.generators.steps",  # writes `steps`, `step_spans`
    "outcome": "rubricate.generators.outcome",  # writes `feedback.outcome`
}


def load(kind: str) -> ModuleType:
    return importlib.import_module(GENERATORS[kind])
