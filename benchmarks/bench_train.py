"""Training steps per second of `rubricate train prm` against a plain TRL script (PRMTrainer, written
out below) with the same tiny model, data and settings, in one run.

    python benchmarks/bench_train.py [--steps 60] [--repeats 3] [--batch-size 8]

Both run as fresh processes, alternating, `--repeats` times each; medians and bests are compared (on a
shared machine the best of several runs is the steadiest estimate: other load only slows). Two figures:
steps/s inside the training loop (the Trainer's own `train_steps_per_second`), and steps/s over the
whole process (imports, data loading, the model saved at the end; rubricate also writes its settings
and summary). Target (issue 8): a ratio of at least 0.95 (our glue costs nothing). Needs the `train`
extra; run it by hand (never timed in tests).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "processbench_gsm8k.jsonl"

PLAIN = '''
import json, sys
import torch
from datasets import load_from_disk
from transformers import AutoModelForTokenClassification, AutoTokenizer
from trl.experimental.prm import PRMConfig, PRMTrainer

data, model_path, out, steps, batch, max_length = sys.argv[1:7]
train = load_from_disk(data)["train"]
tok = AutoTokenizer.from_pretrained(model_path)
args = PRMConfig(output_dir=out, learning_rate=1e-4, max_steps=int(steps), per_device_train_batch_size=int(batch),
                 max_length=int(max_length), seed=42, bf16=False, fp16=False, activation_checkpointing=False,
                 logging_steps=int(steps), logging_first_step=True, save_strategy="steps", save_steps=10 * int(steps),
                 report_to="none", dataloader_pin_memory=torch.cuda.is_available(), step_separator="\\n")
model = AutoModelForTokenClassification.from_pretrained(model_path, num_labels=2)
trainer = PRMTrainer(model=model, args=args, train_dataset=train, processing_class=tok)
metrics = trainer.train().metrics
trainer.save_model(out)
print(json.dumps({"loop": metrics["train_steps_per_second"]}))
'''


def run(cmd: list[str], env: dict) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd[:6])} ... failed:\n{done.stderr[-3000:]}")
    return done


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=512)
    args = parser.parse_args()
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "TRL_EXPERIMENTAL_SILENCE": "1"}

    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        with open(EXAMPLE, encoding="utf-8") as fh:
            rows = [json.loads(line) for line in fh]
        from rubricate.train.tiny import build

        texts = [r["problem"] for r in rows] + [s for r in rows for s in r["steps"]]
        model = str(build(tmp / "model", texts, vocab_size=600))
        data = tmp / "data"
        run([sys.executable, "-m", "rubricate.cli.main", "export", str(EXAMPLE), "--preset", "processbench",
             "--to", "trl-stepwise", "-o", str(data)], env)
        script = tmp / "plain_trl.py"
        script.write_text(PLAIN)
        steps, batch, length = str(args.steps), str(args.batch_size), str(args.max_length)
        results: dict[str, dict[str, list[float]]] = {"plain TRL": {"loop": [], "wall": []},
                                                      "rubricate": {"loop": [], "wall": []}}
        for i in range(args.repeats):
            order = ["plain TRL", "rubricate"] if i % 2 == 0 else ["rubricate", "plain TRL"]
            for name in order:
                out = tmp / f"out-{name[0]}-{i}"
                start = time.perf_counter()  # both timed from here, process start to exit
                if name == "plain TRL":
                    done = run([sys.executable, str(script), str(data), model, str(out), steps, batch, length], env)
                    figures = {"loop": json.loads(done.stdout.strip().splitlines()[-1])["loop"],
                               "wall": time.perf_counter() - start}
                else:
                    run([sys.executable, "-m", "rubricate.cli.main", "train", "prm", str(data), "--model", model,
                         "-o", str(out), "--max-steps", steps, "--batch-size", batch, "--max-length", length,
                         "--lr", "1e-4", "--logging-steps", steps, "--save-steps", str(10 * args.steps),
                         "--report-to", "none", "--no-gradient-checkpointing", "--no-bf16"], env)
                    wall = time.perf_counter() - start
                    summary = json.loads((out / "rubricate_train.json").read_text())
                    figures = {"loop": summary["train"]["train_steps_per_second"], "wall": wall}
                results[name]["loop"].append(figures["loop"])
                results[name]["wall"].append(args.steps / figures["wall"])
                print(f"  run {i + 1} {name:10s} loop {figures['loop']:6.2f} steps/s   "
                      f"process {args.steps / figures['wall']:6.2f} steps/s", flush=True)

    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU, {torch.get_num_threads()} threads"
    print(f"\n== rubricate train prm vs plain TRL (PRMTrainer) on {device}: {args.steps} steps, batch "
          f"{args.batch_size}, {args.repeats} runs each ==")
    for figure, label in (("loop", "training loop"), ("wall", "whole process")):
        for stat, pick in (("median", statistics.median), ("best", max)):
            plain = pick(results["plain TRL"][figure])
            ours = pick(results["rubricate"][figure])
            ratio = ours / plain
            print(f"{label:14s} {stat:6s} plain TRL {plain:6.2f} steps/s   rubricate {ours:6.2f} steps/s   "
                  f"ratio {ratio:.3f}   target >= 0.95: {'met' if ratio >= 0.95 else 'MISSED'}")

if __name__ == "__main__":
    main()
