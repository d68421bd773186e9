"""The commands end to end: in-process for speed, in a real process for pipes, signals and exits."""

import json
import os
import signal
import subprocess
import sys
import time


from helpers import EXAMPLES, ROOT, run_process, write_jsonl

EXAMPLE = str(EXAMPLES / "processbench_gsm8k.jsonl")


def test_main_job_verifies_the_bundled_example(rubricate):
    result = rubricate("verify", EXAMPLE, "--preset", "processbench")
    assert result.code == 0, result.stderr
    records = result.records()
    source = [json.loads(line) for line in open(EXAMPLE)]
    assert [r["id"] for r in records] == [s["id"] for s in source]
    agree = sum(r["feedback"]["outcome"]["correct"] == s["final_answer_correct"]
                for r, s in zip(records, source))
    assert agree / len(source) >= 0.95
    from rubricate import schemas
    assert all(not list(schemas.errors(r)) for r in records)


def test_round_trip_keeps_every_input_field(rubricate, tmp_path):
    source = [json.loads(line) for line in open(EXAMPLE)][:5]
    result = rubricate("verify", EXAMPLE, "--preset", "processbench")
    for src, rec in zip(source, result.records()):
        for key, value in src.items():
            assert rec.get(key, rec["meta"].get(key)) == value, key
    # And the output reads back as the same records.
    out = tmp_path / "again.jsonl"
    out.write_text(result.stdout)
    again = rubricate("verify", str(out))
    assert again.records() == result.records()


def test_steps_then_stats_through_stdin(rubricate):
    rows = [{"problem": "p", "response": "First we add.\n\nThen we multiply.\n\nSo \\boxed{4}."},
            {"problem": "q", "response": "1. a\n2. b", "steps": ["given"]}]
    stepped = rubricate("steps", stdin="\n".join(json.dumps(r) for r in rows))
    assert stepped.code == 0, stepped.stderr
    records = stepped.records()
    assert records[0]["steps"] == ["First we add.", "Then we multiply.", "So \\boxed{4}."]
    assert records[1]["steps"] == ["given"]
    summary = rubricate("stats", "--json", stdin=stepped.stdout)
    data = json.loads(summary.stdout)
    assert data["records"] == 2 and data["fields"]["steps"] == 2
    assert data["steps_per_trace"]["min"] == 1 and data["steps_per_trace"]["max"] == 3


def test_stats_reports_outcome_accuracy(rubricate):
    verified = rubricate("verify", EXAMPLE, "--preset", "processbench")
    data = json.loads(rubricate("stats", "--json", stdin=verified.stdout).stdout)
    outcomes = [r["feedback"]["outcome"]["correct"] for r in verified.records()]
    assert data["outcome"]["correct"] == outcomes.count(True)
    assert data["outcome"]["incorrect"] == outcomes.count(False)
    assert data["feedback"] == {"outcome": len(outcomes)}
    table = rubricate("stats", stdin=verified.stdout)
    assert "outcome accuracy" in table.stdout and f"{outcomes.count(True)} correct" in table.stdout


def test_malformed_line_fails_with_file_and_line(rubricate, tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [{"problem": "a", "response": "1"}, '{"problem": '])
    out = tmp_path / "out.jsonl"
    result = rubricate("verify", str(src), "-o", str(out))
    assert result.code == 1
    assert f"{src}:2: invalid JSON" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()


def test_skip_writes_rejects_with_reasons(rubricate, tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [{"problem": "a", "response": "x"}, "nope",
                                              {"id": "q7", "response": "no problem"}])
    out, rej = tmp_path / "out.jsonl", tmp_path / "rej.jsonl"
    result = rubricate("verify", str(src), "-o", str(out), "--on-error", "skip", "--rejects", str(rej))
    assert result.code == 0
    rejects = [json.loads(line) for line in rej.read_text().splitlines()]
    assert [(r["line"], r["id"], r["field"]) for r in rejects] == [(2, None, None), (3, "q7", "problem")]
    assert len(out.read_text().splitlines()) == 1
    assert "2 of 3 records rejected" in result.stderr


def test_usage_errors_exit_2(rubricate):
    assert rubricate("verify", "--map", "problem").code == 2
    assert rubricate("verify", "--no-such-option").code == 2
    result = rubricate("verify", "--on-error", "skip", stdin='{"problem": "p"}')
    assert result.code == 2 and "--rejects" in result.stderr


def test_debug_shows_the_traceback(rubricate, tmp_path):
    missing = str(tmp_path / "missing.jsonl")
    plain = rubricate("verify", missing)
    debug = rubricate("verify", missing, "--debug")
    assert plain.code == debug.code == 1
    assert "Traceback" not in plain.stderr and "Traceback" in debug.stderr


def test_parquet_in_and_out(rubricate, tmp_path):
    out = tmp_path / "v.parquet"
    assert rubricate("verify", EXAMPLE, "--preset", "processbench", "-o", str(out)).code == 0
    back = rubricate("stats", "--json", str(out))
    data = json.loads(back.stdout)
    assert data["records"] == 80 and data["feedback"] == {"outcome": 80}


def test_startup_imports_nothing_heavy():
    code = ("import sys, rubricate.cli.main; "
            "print(' '.join(m for m in ('litellm', 'datasets', 'torch', 'transformers', 'openai', "
            "'anthropic', 'math_verify', 'sympy', 'pyarrow', 'jsonschema') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == ""
    help_run = run_process("--help")
    assert help_run.returncode == 0 and b"verify" in help_run.stdout
    version = run_process("--version")
    assert version.stdout.decode().startswith("rubricate ")


def test_pipe_of_two_processes_and_a_closed_reader(tmp_path):
    first = subprocess.Popen([sys.executable, "-m", "rubricate.cli.main", "verify", EXAMPLE, "--preset",
                              "processbench"], stdout=subprocess.PIPE, cwd=ROOT)
    second = subprocess.run([sys.executable, "-m", "rubricate.cli.main", "stats", "--json"],
                            stdin=first.stdout, capture_output=True, cwd=ROOT, timeout=120)
    first.wait(timeout=120)
    assert first.returncode == 0 and second.returncode == 0
    assert json.loads(second.stdout)["records"] == 80
    # A reader that stops early (`| head -1`) ends the writer quietly.
    head = subprocess.run(f"{sys.executable} -m rubricate.cli.main verify {EXAMPLE} --preset processbench"
                          " | head -1", shell=True, capture_output=True, cwd=ROOT, timeout=120)
    assert len(head.stdout.splitlines()) == 1
    assert b"Traceback" not in head.stderr


def _default_sigint():
    # A background job may inherit SIGINT ignored; a user's Ctrl-C reaches a process that is not.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start_long_run(src, out):
    proc = subprocess.Popen([sys.executable, "-m", "rubricate.cli.main", "verify", str(src), "--preset",
                             "gsm8k", "-o", str(out)], cwd=ROOT, stderr=subprocess.PIPE,
                            preexec_fn=_default_sigint)
    deadline = time.time() + 60
    while time.time() < deadline and not any(p.name.startswith(".out.jsonl.") for p in out.parent.iterdir()):
        time.sleep(0.05)
    time.sleep(0.5)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    return proc


def test_killed_run_never_leaves_a_partial_file(tmp_path, shared_data):
    lines = (shared_data / "gsm8k_test.jsonl").read_text()
    src = tmp_path / "in" / "big.jsonl"
    src.parent.mkdir()
    src.write_text(lines * 30)  # long enough to be caught half-way
    tmp_path = tmp_path / "out"
    tmp_path.mkdir()
    out = tmp_path / "out.jsonl"
    proc = _start_long_run(src, out)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists()
    # Ctrl-C: exit 130, and still nothing under the final name.
    for leftover in tmp_path.iterdir():  # SIGKILL gives no chance to clean up the temporary file
        leftover.unlink()
    proc = _start_long_run(src, out)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert b"Interrupted" in err and b"Traceback" not in err
    assert not out.exists() and list(tmp_path.iterdir()) == []
    # kill (SIGTERM): the same clean unwinding.
    proc = _start_long_run(src, out)
    proc.terminate()
    proc.communicate(timeout=30)
    assert proc.returncode == 143
    assert not out.exists() and list(tmp_path.iterdir()) == []
