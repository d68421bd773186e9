"""ThinkPRM SFT data (Khalifa et al., "Process Reward Models That Think", arXiv 2504.16828): a judge's
verification chains as targets for fine-tuning a generative verifier.

Rows carry the columns of ThinkPRM's released training set (launch/thinkprm-1K-verification-cots:
`problem`, `prefix`, `cot`, `prefix_steps`, `gt_step_labels` as "+" / "-", `prefix_label`) and
`messages`, the same example as a conversation TRL's SFTTrainer reads: the user turn is ThinkPRM's
verification prompt (mukhal/ThinkPRM utils/helper.py, the instruction its models were trained with;
steps numbered "Step i: ..." one per line, an existing "Step i:" dropped first, as
prm/thinkprm_api.py does) and the assistant turn the judge's chain, which begins "Let's verify step by
step:" as ThinkPRM prefills it.

Chains come from a `rubricate label --method judge --template thinkprm` entry (`--labels` names it;
default `step_labels`): each sample the judge wrote whose earliest incorrect step equals the gold
one. As ThinkPRM keeps only chains whose step judgements match the gold labels, a record without gold
labels (an importer's `source_labels`, or ProcessBench's `meta.label`) gives no row. Gold labels after
the first error are "-", as ThinkPRM's dataset code writes them.
"""

from __future__ import annotations

import re

from rubricate.formats.export.common import ExportOptions
from rubricate.formats.export.errors import Unusable
from rubricate.formats.export.labels import LabelPolicy, apply, first_bad, gold, steps_of

THINKPRM_PROMPT = (
    "You are given a math problem and a proposed step-by-step solution:\n\n"
    "[Math Problem]\n\n{problem}\n\n"
    "[Solution]\n\n{solution}\n\n"
    "Review and critique each step in the proposed solution to determine whether each step is correct. "
    "If the solution is incomplete, only verify the provided steps."
)
_STEP_NUMBER = re.compile(r"Step \d+:")


def numbered(steps: list[str]) -> str:
    return "\n".join(f"Step {i + 1}: " + _STEP_NUMBER.sub("", s).strip() for i, s in enumerate(steps))


def thinkprm_sft(record: dict, opts: ExportOptions) -> list[dict]:
    problem = record.get("problem")
    if not isinstance(problem, str) or not problem.strip():
        raise Unusable("no problem")
    steps = steps_of(record)
    feedback = record.get("feedback") if isinstance(record.get("feedback"), dict) else {}
    name = opts.labels or "step_labels"
    judge = feedback.get(name)
    if not isinstance(judge, dict) or judge.get("method") != "judge":
        raise Unusable(f"no judge labels in feedback.{name} (run `rubricate label --method judge "
                       "--template thinkprm`)")
    details = judge.get("details") if isinstance(judge.get("details"), dict) else {}
    if details.get("template") != "thinkprm":
        raise Unusable(f"feedback.{name} was not written with the thinkprm template")
    texts, votes = details.get("texts") or [], details.get("votes") or []
    truth = gold(record)
    if truth is None:
        raise Unusable("no gold step labels to select verification chains with")
    gold_labels = truth[1]["labels"]
    if len(gold_labels) != len(steps):
        raise Unusable(f"{len(gold_labels)} gold labels for {len(steps)} steps")
    policy = LabelPolicy(threshold=opts.policy.threshold, after_error="bad", unlabelled="bad")
    marks = ["+" if policy.good(v) else "-" for _, v in apply(steps, gold_labels, policy)]
    first = first_bad(gold_labels, policy)
    gold_first = -1 if first is None else first
    prompt = THINKPRM_PROMPT.format(problem=problem, solution=numbered(steps))
    rows = []
    for sample, (text, vote) in enumerate(zip(texts, votes)):
        if vote is None or vote != gold_first or not isinstance(text, str):
            continue
        rows.append({"problem": problem, "prefix": numbered(steps), "cot": text, "prefix_steps": steps,
                     "gt_step_labels": marks, "prefix_label": gold_first == -1,
                     "messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": text}],
                     "id": f"{record.get('id')}#cot{sample}"})
    if not rows:
        raise Unusable(f"none of the judge's {len(texts)} chains finds the gold first error ({gold_first})")
    return rows
