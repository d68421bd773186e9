"""Step labels from likelihood gain: how much each step raises a scoring model's belief in the
reference answer. Annotation-free: no judge, no rollouts, one forward pass per prefix.

For k = 0..n the scoring model reads the problem, the first k steps and an answer cue, and gives
the log-probability of the reference answer as the continuation:

    lp(k) = log p(" " + reference answer | prompt + steps[:k] + "\\n\\nThe final answer is")

summed over the answer's tokens (`Request(prompt=..., score=...)`: echo + logprobs on an
OpenAI-compatible completions server, one pass of llama.cpp locally). Step k's contribution is
lp(k + 1) - lp(k), in nats: positive when the step made the reference answer more likely. The label
is the logistic of the contribution, 1 / (1 + exp(-delta)): 0.5 for a step that changes nothing,
above for a step that helps, below for one that hurts (a step that makes the answer e times less
likely gets 0.27). The first error is the first step whose label is below `threshold` (default
0.1: the step made the reference answer about 9 times less likely). The raw log-probabilities and
contributions are in `details`.

What this is and is not: a likelihood-gain signal. It is related to, not the same as, L2T's
information-theoretic dense reward, which measures what a reasoning episode adds to the policy's
own parameters and needs the policy's gradients; this only reads a scoring model's predictions. A
step can raise the probability of the right answer by restating the problem or by guessing, and a
correct step can lower it when it heads towards a form the answer is not written in: treat the
labels as a dense, cheap, noisy signal, not as a verdict.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from rubricate.answers import answer_text
from rubricate.errors import RubricateError
from rubricate.generators.step_labels import KIND, entry, failed, first_below, make_provenance, prefix_text, steps_of
from rubricate.llm.types import Request, RequestFailed, failure
from rubricate.prompts import Template, variables
from rubricate.records import set_feedback

METHOD = "likelihood"
REQUIRES = ("problem",)
CUE = "\n\nThe final answer is"
# A step that makes the reference answer about 9 times less likely (delta < -2.2 nats). On the 80 bundled
# examples with the bundled local model this gave ProcessBench F1 30% (0.5, any drop at all: 0%).
DEFAULT_THRESHOLD = 0.1


def to_label(delta: float) -> float:
    """A contribution in nats as a label in [0, 1]: the logistic function, 0.5 at no change."""
    if delta >= 0:
        return 1.0 / (1.0 + math.exp(-delta))
    z = math.exp(delta)
    return z / (1.0 + z)


def prompts(record: dict, head: str, n: int) -> list[str]:
    """The n + 1 prompts: the problem alone, then with each prefix of the trace, each ending in the cue."""
    return [head + ("\n" + prefix_text(record, k - 1) if k else "") + CUE for k in range(n + 1)]


async def label_record(record: dict, llm: Any, *, template: Template, into: str = KIND, strategy: str = "auto",
                       threshold: float = DEFAULT_THRESHOLD) -> dict:
    """Score the reference answer after every prefix and set `feedback.<into>`."""
    prov = make_provenance(METHOD, llm, template=template, params={"threshold": threshold, "cue": CUE,
                                                                  "mapping": "logistic"})
    steps = steps_of(record, strategy)
    n = len(steps)
    if not steps:
        return set_feedback(record, into, failed(METHOD, 0, "no steps to label", prov))
    reference = answer_text((record.get("reference") or {}).get("answer"))
    if reference is None or not reference.strip():
        return set_feedback(record, into, failed(METHOD, n, "no reference answer to score", prov))
    answer = " " + reference.strip()
    try:
        head = template.render(**variables(record))
        # All prefixes of one trace at once: they share their text, so a prefix cache reads it once.
        scored = await asyncio.gather(*(llm.complete(Request(prompt=p, score=answer))
                                        for p in prompts(record, head, n)))
    except (RequestFailed, RubricateError) as exc:
        error = failure(exc)
        return set_feedback(record, into, failed(METHOD, n, error["reason"], prov, attempts=error["attempts"]))
    logprobs = []
    for completion in scored:
        values = completion.token_logprobs or []
        if not values or any(v is None or math.isnan(v) for v in values):
            return set_feedback(record, into, failed(METHOD, n, "the scoring model returned no log-probabilities "
                                                                "for the answer", prov))
        logprobs.append(sum(values))
    deltas = [logprobs[k + 1] - logprobs[k] for k in range(n)]
    labels = [to_label(d) for d in deltas]
    details = {"logprobs": [round(v, 6) for v in logprobs], "contributions": [round(d, 6) for d in deltas],
               "answer": reference.strip(), "answer_tokens": len(scored[0].token_logprobs or []),
               "threshold": threshold}
    return set_feedback(record, into, entry(METHOD, labels, first_below(labels, threshold), details, prov))
