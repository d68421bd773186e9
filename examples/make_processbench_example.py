"""Rebuild examples/processbench_gsm8k.jsonl: a slice of ProcessBench's GSM8K subset, each trace
joined (on the problem text) with its GSM8K gold answer and reference solution.

    python examples/make_processbench_example.py ../shared/data

ProcessBench traces carry no reference answer; the join gives `verify` something to check against.
The slice takes the first 40 traces with an error and the first 40 without, in dataset order.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(data: Path, out: Path, per_class: int = 40) -> None:
    gold = {}
    for line in open(data / "gsm8k_test.jsonl", encoding="utf-8"):
        row = json.loads(line)
        gold[" ".join(row["question"].split())] = row["answer"]
    traces = json.load(open(data / "processbench_gsm8k.json", encoding="utf-8"))
    taken = {True: 0, False: 0}
    with open(out, "w", encoding="utf-8") as fh:
        for trace in traces:
            has_error = trace["label"] != -1
            solution = gold.get(" ".join(trace["problem"].split()))
            if solution is None or taken[has_error] >= per_class:
                continue
            taken[has_error] += 1
            trace["reference"] = {"answer": solution.rpartition("####")[2].strip().replace(",", ""),
                                  "solution": solution}
            fh.write(json.dumps(trace, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    here = Path(__file__).resolve().parent
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else here.parent.parent / "shared" / "data",
         here / "processbench_gsm8k.jsonl")
