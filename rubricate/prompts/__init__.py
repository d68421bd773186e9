"""Prompt templates: Jinja files shipped beside this module, and users' own through `--template`.

Everything renders in a sandboxed environment with undefined variables as errors, so a typo in a
template stops the run at the first record instead of sending empty prompts to a paid API.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from rubricate.errors import InputError, UsageError
from rubricate.records import template_hash


@dataclass(frozen=True)
class Template:
    name: str  # a bundled template's name, or the user's path
    text: str

    @property
    def hash(self) -> str:
        return template_hash(self.text)

    def render(self, **variables: Any) -> str:
        from jinja2 import TemplateError, UndefinedError

        try:
            return _compile(self.text).render(**variables)
        except UndefinedError as exc:
            raise InputError(f"template {self.name}: {exc.message}", field=None,
                             hint="The record lacks a field the template uses; map it with --map.") from exc
        except TemplateError as exc:
            raise UsageError(f"template {self.name}: {exc}") from exc


def render_chat(template: Template, values: dict[str, Any]) -> tuple[str | None, str]:
    """(system, user message): a template may set its system prompt with
    `{% set system %}...{% endset %}`; the rest of its text is the user message."""
    from jinja2 import TemplateError, UndefinedError

    try:
        module = _compile(template.text).make_module(values)
    except UndefinedError as exc:
        raise InputError(f"template {template.name}: {exc.message}",
                         hint="The record lacks a field the template uses; map it with --map.") from exc
    except TemplateError as exc:
        raise UsageError(f"template {template.name}: {exc}") from exc
    system = getattr(module, "system", None)
    return (str(system).strip() or None) if system is not None else None, str(module)


def quote(text: str, tags: tuple[str, ...]) -> str:
    """The trace as data: any of the prompt's own delimiter tags inside it is defused (`<solution` ->
    `&lt;solution`), so a trace cannot close its block and speak as the prompt."""
    pattern = _delimiters(tags)
    return pattern.sub(lambda m: "&lt;" + m.group(1) + m.group(2), text)


@lru_cache(maxsize=16)
def _delimiters(tags: tuple[str, ...]) -> "re.Pattern[str]":
    return re.compile(r"<(/?)(" + "|".join(re.escape(t) for t in tags) + r")\b", re.I)


@lru_cache(maxsize=64)
def _compile(text: str):
    from jinja2 import StrictUndefined, TemplateSyntaxError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=False,
                                        trim_blocks=True, lstrip_blocks=True, autoescape=False)
    try:
        return env.from_string(text)
    except TemplateSyntaxError as exc:
        raise UsageError(f"template syntax error at line {exc.lineno}: {exc.message}") from exc


def bundled(name: str) -> Template:
    path = resources.files(__name__).joinpath(f"{name}.jinja")
    if not path.is_file():
        raise UsageError(f"no bundled template {name!r}")
    return Template(name, path.read_text("utf-8"))


def load(spec: str | None, default: str) -> Template:
    """A user's template file, or the bundled one named `default`."""
    if spec is None:
        return bundled(default)
    path = Path(spec)
    if not path.is_file():
        raise UsageError(f"--template {spec}: no such file")
    _compile(path.read_text("utf-8"))  # syntax errors now, not at the first record
    return Template(str(path), path.read_text("utf-8"))


def variables(record: dict) -> dict[str, Any]:
    """What a template sees: each record field by name, and the whole record as `record`."""
    return {**record, "record": record}
