"""`sample`: n rollouts of a policy model per problem, each written as its own trace record, so a
user with problems but no traces can start the pipeline here."""

from __future__ import annotations

import copy
from typing import Any

from rubricate.errors import RubricateError
from rubricate.llm.types import Request, RequestFailed, failure
from rubricate.prompts import Template, variables
from rubricate.records import model_provenance

REQUIRES = ("problem",)


async def sample_record(record: dict, llm: Any, *, template: Template, n: int, params: dict[str, Any],
                        raw: bool = False) -> list[dict]:
    """n trace records: `response` filled, `group` = the problem's id, id `<problem id>#<k>`.

    A failed request still gives its n records, with `response: null` and the error in
    `meta.rollout.error`, so nothing is dropped.
    """
    prov = model_provenance("sample", llm, template=template, params={**params, "n": n})
    texts: list[str | None] = [None] * n
    finish: list[str | None] = [None] * n
    error = None
    try:
        prompt = template.render(**variables(record))
        request = (Request(prompt=prompt, n=n, **params) if raw else
                   Request(messages=({"role": "user", "content": prompt},), n=n, **params))
        completion = await llm.complete(request)
        texts = list(completion.texts) + [None] * (n - len(completion.texts))
        finish = list(completion.finish_reasons) + [None] * (n - len(completion.finish_reasons))
    except (RequestFailed, RubricateError) as exc:
        error = failure(exc)
    group = record.get("group") if record.get("group") is not None else record["id"]
    rollouts = []
    for k in range(n):
        rollout = copy.deepcopy(record)
        for owned in ("steps", "step_spans", "feedback"):  # they described another response
            rollout.pop(owned, None)
        rollout["id"] = f"{record['id']}#{k}"
        rollout["response"] = texts[k]
        rollout["group"] = group
        meta = rollout.setdefault("meta", {})
        meta["rollout"] = {"index": k, "finish_reason": finish[k], "provenance": prov}
        if error is not None:
            meta["rollout"]["error"] = error
        rollouts.append(rollout)
    return rollouts
