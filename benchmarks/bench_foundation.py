"""Foundation figures: startup time, verify throughput on MATH-500, peak memory while streaming.

    python benchmarks/bench_foundation.py [--data ../shared/data] [--records 100000]

Prints figures and ratios; run it by hand (never timed in tests). Targets (issue 2): `--help` under
0.3 s; peak memory flat in the number of records.
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
CLI = [sys.executable, "-m", "rubricate.cli.main"]


def wall(cmd: list[str], runs: int, **kw) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, **kw)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_rss_mb(cmd: list[str], stdin_path: Path) -> float:
    """Peak resident memory of one child process (ru_maxrss of a fresh child via `time -v`-like wait4)."""
    with open(stdin_path, "rb") as fh:
        proc = subprocess.Popen(cmd, stdin=fh, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{cmd} failed: {proc.stderr.read().decode()[-2000:]}")
    return usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()

    print("== startup ==")
    python_only = wall([sys.executable, "-c", "pass"], args.runs)
    help_time = wall([*CLI, "--help"], args.runs)
    console = wall(["rubricate", "--help"], args.runs) if shutil_which("rubricate") else float("nan")
    print(f"python -c pass            {python_only * 1000:7.1f} ms")
    print(f"python -m rubricate --help {help_time * 1000:7.1f} ms")
    print(f"rubricate --help (script)  {console * 1000:7.1f} ms   target < 300 ms: "
          f"{'met' if console < 0.3 else 'MISSED'}")
    print(f"rubricate --version       {wall(['rubricate', '--version'], args.runs) * 1000:7.1f} ms")

    print("\n== verify throughput on MATH-500 (reference solution as the response) ==")
    math500 = args.data / "math500.jsonl"
    start = time.perf_counter()
    out = subprocess.run([*CLI, "verify", str(math500), "--preset", "math", "--map", "response=solution"],
                         check=True, capture_output=True)
    elapsed = time.perf_counter() - start
    records = [json.loads(line) for line in out.stdout.splitlines()]
    correct = sum(r["feedback"]["outcome"]["correct"] is True for r in records)
    print(f"{len(records)} records in {elapsed:.2f} s (process included) = {len(records) / elapsed:.0f} records/s; "
          f"{correct} correct")
    sys.path.insert(0, str(ROOT))
    from rubricate.formats.mapping import Mapper, parse_map
    from rubricate.formats.read import read_items
    from rubricate.generators.outcome import verify_record

    mapper = Mapper(parse_map("response=solution"), "math")
    mapped = [mapper(i.value) for i in read_items(str(math500))]
    verify_record(dict(mapped[0]))  # import math-verify and sympy outside the timing
    start = time.perf_counter()
    for record in mapped:
        verify_record(record)
    inner = time.perf_counter() - start
    print(f"in-process verify_record: {len(mapped) / inner:.0f} records/s")

    print(f"\n== peak memory streaming (verify GSM8K reference solutions, JSONL stdin -> stdout) ==")
    gsm8k = (args.data / "gsm8k_test.jsonl").read_text().splitlines()
    with tempfile.TemporaryDirectory() as tmp:
        sizes = [args.records // 10, args.records]
        peaks = []
        for n in sizes:
            path = Path(tmp) / f"{n}.jsonl"
            with open(path, "w") as fh:
                for i in range(n):
                    fh.write(gsm8k[i % len(gsm8k)] + "\n")
            start = time.perf_counter()
            peak = peak_rss_mb([*CLI, "verify", "--preset", "gsm8k", "--map", "response=answer"], path)
            took = time.perf_counter() - start
            peaks.append(peak)
            print(f"{n:>8} records: peak RSS {peak:7.1f} MB, {took:6.1f} s ({n / took:.0f} records/s)")
        print(f"ratio peak({sizes[1]}) / peak({sizes[0]}) = {peaks[1] / peaks[0]:.3f} (flat = 1.0)")


def shutil_which(name: str) -> str | None:
    import shutil

    return shutil.which(name)


if __name__ == "__main__":
    main()
