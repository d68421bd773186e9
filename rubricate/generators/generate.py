"""`generate`: a user's template, rendered per record, answered by a model, stored under
`feedback.<name>`. The tool for feedback kinds rubricate does not ship."""

from __future__ import annotations

from typing import Any

from rubricate.errors import RubricateError
from rubricate.llm.types import Request, RequestFailed, failure
from rubricate.prompts import Template, variables
from rubricate.records import model_provenance, set_feedback

REQUIRES = ("problem",)


async def generate_record(record: dict, llm: Any, *, template: Template, into: str, params: dict[str, Any],
                          raw: bool = False, system: str | None = None) -> dict:
    """Render, ask, store. A failed request leaves `error` in the entry; the record goes on."""
    prov = model_provenance("generate", llm, template=template, params=params)
    entry: dict[str, Any] = {"provenance": prov}
    try:
        prompt = template.render(**variables(record))
        request = (Request(prompt=prompt, system=system, **params) if raw else
                   Request(messages=({"role": "user", "content": prompt},), system=system, **params))
        completion = await llm.complete(request)
    except (RequestFailed, RubricateError) as exc:
        entry["error"] = failure(exc)
    else:
        entry["text"] = completion.text
        if request.n > 1:
            entry["texts"] = completion.texts
        entry["finish_reason"] = (completion.finish_reasons or [None])[0]
        entry["usage"] = {"prompt_tokens": completion.prompt_tokens,
                          "completion_tokens": completion.completion_tokens}
    return set_feedback(record, into, entry)
