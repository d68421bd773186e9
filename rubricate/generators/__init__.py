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
    "step_labels.judge": "rubricate.generators.label_judge",  # writes `feedback.step_labels`
    "step_labels.rollout": "rubricate.generators.label_rollout",  # writes `feedback.step_labels`
    "step_labels.expert": "rubricate.generators.label_expert",  # writes `feedback.step_labels`
    "step_labels.likelihood": "rubricate.generators.label_likelihood",  # writes `feedback.step_labels`
    "critique": "rubricate.generators.critique",  # writes `feedback.critique`
    "refinement": "rubricate.generators.refine",  # writes `feedback.refinement`
    "rubric": "rubricate.generators.rubric",  # writes `feedback.rubric`
    "rubric_author": "rubricate.generators.rubric_author",  # writes the record's `rubric`
    "contamination": "rubricate.generators.contamination",  # writes `feedback.contamination`
}


def load(kind: str) -> ModuleType:
    return importlib.import_module(GENERATORS[kind])
