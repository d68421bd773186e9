"""JSON Schemas of every record kind, shipped as package data, and the one validator built on them.

`trace.schema.json` is the record; each feedback kind has `<kind>.schema.json`; all of them refer to
`provenance.schema.json`. References resolve inside this folder, never over the network.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any, Iterator

SCHEMA_BASE = "https://rubricate.dev/schemas/"


@lru_cache(maxsize=1)
def names() -> tuple[str, ...]:
    # Cached: errors() asks for every record that carries feedback, and listing the folder is I/O.
    return tuple(sorted(p.name.removesuffix(".schema.json") for p in resources.files(__name__).iterdir()
                        if p.name.endswith(".schema.json")))


@lru_cache(maxsize=None)
def load(name: str) -> dict:
    return json.loads(resources.files(__name__).joinpath(f"{name}.schema.json").read_text("utf-8"))


@lru_cache(maxsize=None)
def _registry():
    from referencing import Registry, Resource

    return Registry().with_resources(
        (SCHEMA_BASE + f"{n}.schema.json", Resource.from_contents(load(n))) for n in names()
    )


@lru_cache(maxsize=None)
def validator(name: str = "trace"):
    from jsonschema import Draft202012Validator

    return Draft202012Validator(load(name), registry=_registry())


def errors(instance: Any, name: str = "trace") -> Iterator[tuple[str, str]]:
    """(field path, message) for each way `instance` breaks schema `name`, shallowest first.

    For a trace, each `feedback.<kind>` entry is also checked against `<kind>.schema.json` when
    rubricate has one: a new feedback kind brings its schema file and needs no edit here.
    """
    yield from _errors(instance, name)
    if name == "trace" and isinstance(instance, dict) and isinstance(instance.get("feedback"), dict):
        known = set(names())
        for kind, entry in instance["feedback"].items():
            if kind in known and kind not in ("trace", "provenance", "rubric_file"):
                for path, message in _errors(entry, kind):
                    yield f"feedback.{kind}" + ("" if path == "(record)" else f".{path}"), message


def _errors(instance: Any, name: str) -> Iterator[tuple[str, str]]:
    for err in sorted(validator(name).iter_errors(instance), key=lambda e: (len(e.path), str(e.path))):
        parts = [str(p) for p in err.absolute_path]
        if err.validator == "required" and isinstance(err.instance, dict):
            # Name the missing field itself, not the object that lacks it.
            missing = [k for k in err.validator_value if k not in err.instance]
            yield ".".join(parts + missing[:1]), "missing"
            continue
        yield ".".join(parts) or "(record)", err.message


def first_error(instance: Any, name: str = "trace") -> tuple[str, str] | None:
    return next(errors(instance, name), None)
