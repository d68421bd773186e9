"""Continuations spent per trace by `label --method rollout`, binary search against linear (issue 5).

    python benchmarks/bench_rollout_search.py [--rollouts 8] [--p 0.75] [--data ../shared/data]

On the 400 ProcessBench GSM8K traces (each joined with its GSM8K answer), a scripted policy on the
test server continues each prefix: before the trace's gold error step each continuation reaches the
reference answer with probability p (a fixed hash of the prompt and sample, so runs repeat), from
the gold error step on never. Both searches label every trace; the script prints continuations per
trace, the ratio binary / linear (target: at most 0.5), how often the two agree on the first error,
and both against the gold labels with ProcessBench's metric. Run by hand, never in tests.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("OPENAI_API_KEY", "sk-bench")


def load(data: Path) -> list[dict]:
    from rubricate.formats.mapping import Mapper

    answers = {}
    for line in open(data / "gsm8k_test.jsonl", encoding="utf-8"):
        row = json.loads(line)
        answers[" ".join(row["question"].split())] = row["answer"].rpartition("####")[2].strip().replace(",", "")
    mapper = Mapper({}, "processbench")
    records = []
    for trace in json.loads((data / "processbench_gsm8k.json").read_text()):
        trace["reference"] = {"answer": answers[" ".join(trace["problem"].split())]}
        records.append(mapper(trace))
    return records


def policy(records: list[dict], rollouts: int, p: float):
    from rubricate.generators.label_rollout import Estimator
    from rubricate.prompts import bundled

    template = bundled("label_rollout")
    where = {}
    for record in records:
        probe = Estimator(record, None, template.render(problem=record["problem"]), "", rollouts, {}, 3.0)
        for k in range(len(record["steps"])):
            where[probe.prompt(k)] = (record, k)

    def reply(req: dict) -> str:
        record, k = where[req["text"]]
        gold, answer = record["meta"]["label"], record["reference"]["answer"]
        u = int.from_bytes(hashlib.sha256(f"{req['text']}\x00{req['sample']}".encode()).digest()[:8], "big") / 2**64
        good = (gold == -1 or k < gold) and u < p
        return f" Continuing from here, the answer is \\boxed{{{answer if good else answer + '1'}}}."
    return reply


async def label_all(records: list[dict], url: str, search: str, rollouts: int) -> tuple[list[dict], float]:
    from rubricate.generators import label_rollout
    from rubricate.llm.engine import Engine, EngineConfig
    from rubricate.llm.openai_api import OpenAIBackend
    from rubricate.prompts import bundled

    engine = Engine(OpenAIBackend("policy", api_base=url, concurrency=64),
                    EngineConfig(concurrency=64, use_cache=False))
    template = bundled("label_rollout")
    start = time.perf_counter()
    try:
        labelled = await asyncio.gather(*(
            label_rollout.label_record(json.loads(json.dumps(r)), engine, template=template, rollouts=rollouts,
                                       search=search, params={"temperature": 0.7, "max_tokens": 64})
            for r in records))
    finally:
        await engine.aclose()
    return labelled, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rollouts", type=int, default=8)
    parser.add_argument("--p", type=float, default=0.75, help="chance a continuation before the error is right")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    args = parser.parse_args()

    from llm_server import FakeLLMServer
    from rubricate.evaluation.processbench import evaluate

    records = load(args.data)
    with FakeLLMServer(record=False) as server:
        server.script(None, policy(records, args.rollouts, args.p))
        results = {}
        for search in ("linear", "binary"):
            before = server.count()
            labelled, seconds = asyncio.run(label_all(records, server.openai_base, search, args.rollouts))
            results[search] = (labelled, seconds, server.count() - before)

    spent = {s: [r["feedback"]["step_labels"]["details"]["continuations"] for r in results[s][0]] for s in results}
    errors = {s: sum("error" in r["feedback"]["step_labels"] for r in results[s][0]) for s in results}
    first = {s: [r["feedback"]["step_labels"]["first_error_step"] for r in results[s][0]] for s in results}
    wrong_answer = [not r["meta"]["final_answer_correct"] for r in records]
    print(f"{len(records)} ProcessBench GSM8K traces, {args.rollouts} continuations per prefix, p = {args.p}")
    print(f"{'':>8} {'requests':>9} {'total':>7} {'mean':>6} {'median':>6} {'max':>4} "
          f"{'mean|wrong answer':>18} {'mean|right answer':>18} {'errors':>6} {'F1':>6} {'seconds':>7}")
    for s in ("linear", "binary"):
        xs = spent[s]
        wrong = [x for x, w in zip(xs, wrong_answer) if w]
        right = [x for x, w in zip(xs, wrong_answer) if not w]
        scores = evaluate(results[s][0])["overall"]
        print(f"{s:>8} {results[s][2]:>9} {sum(xs):>7} {statistics.mean(xs):>6.1f} {statistics.median(xs):>6.1f} "
              f"{max(xs):>4} {statistics.mean(wrong):>18.1f} {statistics.mean(right):>18.1f} {errors[s]:>6} "
              f"{scores['f1']:>6.1f} {results[s][1]:>7.2f}")
    ratio = sum(spent["binary"]) / sum(spent["linear"])
    per_trace = [b / a for a, b in zip(spent["linear"], spent["binary"]) if a]
    agree = sum(a == b for a, b in zip(first["linear"], first["binary"]))
    # Bisection assumes MC never rises again after a 0; linear shows where the policy broke that.
    mcs = [r["feedback"]["step_labels"]["details"]["mc"] for r in results["linear"][0]]
    rising = [any(m[i] == 0 and any(v > 0 for v in m[i + 1:]) for i in range(len(m))) for m in mcs]
    broken = sum(r for r, a, b in zip(rising, first["linear"], first["binary"]) if a != b)
    wrong_only = [b / a for a, b, w in zip(spent["linear"], spent["binary"], wrong_answer) if w and a]
    print(f"binary / linear continuations: {ratio:.3f} overall, {statistics.mean(per_trace):.3f} mean per trace, "
          f"{statistics.mean(wrong_only):.3f} mean over traces whose answer is wrong "
          f"(target <= 0.5: {'met' if ratio <= 0.5 else 'NOT met'})")
    print(f"first error: binary agrees with linear on {agree} of {len(records)} traces; of the others, {broken} "
          f"have an MC that rises again after a 0 "
          f"(sampling noise, or a right final answer after a step the policy cannot recover from), which "
          f"bisection assumes away")


if __name__ == "__main__":
    main()
