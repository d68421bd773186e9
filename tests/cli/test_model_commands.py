"""`generate` and `sample` end to end: real SDKs, real HTTP, the scripted server."""

import json
import os
import signal
import subprocess
import sys
import time

from helpers import EXAMPLES, ROOT, write_jsonl

EXAMPLE = str(EXAMPLES / "processbench_gsm8k.jsonl")
SECRET = "sk-test-openai-key-0123456789"


def template(tmp_path, text="Problem: {{ problem }}\nAnswer given: {{ steps[-1] }}\nIs it right?"):
    path = tmp_path / "judge.jinja"
    path.write_text(text)
    return str(path)


def test_generate_stores_answers_in_order_and_reruns_from_the_cache(rubricate, llm_server, tmp_path):
    llm_server.script("Sue lives", "scripted verdict")
    stats1, stats2 = tmp_path / "s1.json", tmp_path / "s2.json"
    args = ["generate", EXAMPLE, "--preset", "processbench", "--template", template(tmp_path), "--into", "judge",
            "--model", "openai/fake-model", "--api-base", llm_server.openai_base, "--concurrency", "8"]
    first = rubricate(*args, "--stats-json", str(stats1))
    assert first.code == 0, first.stderr
    records = first.records()
    source = [json.loads(line) for line in open(EXAMPLE)]
    assert [r["id"] for r in records] == [s["id"] for s in source]
    assert records[0]["feedback"]["judge"]["text"] == "scripted verdict"
    assert len({r["feedback"]["judge"]["text"] for r in records}) == len(records)
    prov = records[0]["feedback"]["judge"]["provenance"]
    assert prov["model"] == "openai/fake-model" and prov["backend"] == "openai"
    assert prov["template_hash"].startswith("sha256:")
    s1 = json.loads(stats1.read_text())
    assert (s1["requests"], s1["cache_hits"], s1["failures"]) == (80, 0, 0)
    assert s1["prompt_tokens"] > 0 and "requests" in first.stderr  # the table on stderr
    second = rubricate(*args, "--stats-json", str(stats2))
    s2 = json.loads(stats2.read_text())
    assert (s2["requests"], s2["cache_hits"]) == (0, 80)
    assert second.stdout == first.stdout
    assert llm_server.count("/v1/chat/completions") == 80


def test_secrets_never_reach_outputs_caches_or_logs(rubricate, llm_server, tmp_path):
    stats = tmp_path / "stats.json"
    out = rubricate("generate", EXAMPLE, "--preset", "processbench", "--template", template(tmp_path),
                    "--into", "judge", "--model", "openai/fake-model", "--api-base", llm_server.openai_base,
                    "--stats-json", str(stats), "--debug")
    assert out.code == 0
    assert any(SECRET in str(r["headers"]) for r in llm_server.requests)  # it was really used
    cache_bytes = b"".join(p.read_bytes() for p in (tmp_path / "cache").rglob("*") if p.is_file())
    for text in (out.stdout, out.stderr, stats.read_text(), cache_bytes.decode("utf-8", "replace")):
        assert SECRET not in text


def test_failed_requests_keep_the_record_with_an_error_and_exit_3(rubricate, llm_server, tmp_path):
    rows = [{"id": f"r{i}", "problem": f"problem {i}", "steps": ["s"]} for i in range(4)]
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    llm_server.fail("503", times=None, match="problem 2")
    out = tmp_path / "out.jsonl"
    result = rubricate("generate", str(src), "--template", template(tmp_path), "--into", "j", "--model",
                       "openai/fake-model", "--api-base", llm_server.openai_base, "--max-retries", "1",
                       "-o", str(out))
    assert result.code == 3
    assert "1 of 4 records kept an error" in result.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in records] == ["r0", "r1", "r2", "r3"]
    error = records[2]["feedback"]["j"]["error"]
    assert error["attempts"] == 2 and "503" in error["reason"] and "text" not in records[2]["feedback"]["j"]


def test_authentication_error_stops_the_run_with_the_provider_message(rubricate, llm_server, tmp_path):
    llm_server.fail("401", times=None)
    out = tmp_path / "out.jsonl"
    result = rubricate("generate", EXAMPLE, "--preset", "processbench", "--template", template(tmp_path),
                       "--into", "j", "--model", "openai/fake-model", "--api-base", llm_server.openai_base,
                       "-o", str(out))
    assert result.code == 3 and "401" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()
    assert llm_server.count() <= 16  # the run stopped; it did not try all 80


def test_missing_key_is_one_line(rubricate, llm_server, monkeypatch, tmp_path):
    monkeypatch.delenv("OPENAI_API_KEY")
    result = rubricate("generate", EXAMPLE, "--preset", "processbench", "--template", template(tmp_path),
                       "--into", "j", "--model", "openai/gpt-4o-mini")
    assert result.code == 3
    assert result.stderr.splitlines()[0] == "Error: OPENAI_API_KEY is not set"


def test_template_errors(rubricate, llm_server, tmp_path):
    bad = template(tmp_path, "{{ reference.answer }} {{ problem }}")
    rows = [{"id": "a", "problem": "p", "reference": {"answer": "1"}}, {"id": "b", "problem": "q"}]
    result = rubricate("generate", str(write_jsonl(tmp_path / "in.jsonl", rows)), "--template", bad, "--into", "j",
                       "--model", "openai/fake-model", "--api-base", llm_server.openai_base)
    assert result.code == 3
    records = result.records()
    assert "text" in records[0]["feedback"]["j"]
    assert "'reference' is undefined" in records[1]["feedback"]["j"]["error"]["reason"]
    syntax = template(tmp_path, "{{ problem ")
    assert rubricate("generate", str(tmp_path / "in.jsonl"), "--template", syntax, "--into", "j", "--model",
                     "openai/m", "--api-base", llm_server.openai_base).code == 2
    sandbox = template(tmp_path, "{{ problem.__class__.__mro__ }}")
    escaped = rubricate("generate", str(tmp_path / "in.jsonl"), "--template", sandbox, "--into", "j", "--model",
                        "openai/m", "--api-base", llm_server.openai_base)
    assert escaped.code != 0 and "__mro__" not in escaped.stdout


def test_sample_writes_n_rollouts_per_problem(rubricate, llm_server, shared_data, tmp_path):
    src = tmp_path / "gsm8k.jsonl"
    src.write_text("".join((shared_data / "gsm8k_test.jsonl").read_text().splitlines(True)[:3]))
    llm_server.script("Janet", lambda req: f"... so she makes \\boxed{{{18 if req['sample'] == 0 else 17}}}")
    result = rubricate("sample", str(src), "--preset", "gsm8k", "--model", "anthropic/claude-test", "--api-base",
                       llm_server.anthropic_base, "--n", "3", "--max-tokens", "64")
    assert result.code == 0, result.stderr
    rollouts = result.records()
    assert len(rollouts) == 9
    first = rollouts[:3]
    assert {r["group"] for r in first} == {first[0]["id"].split("#")[0]}
    assert [r["id"].split("#")[1] for r in first] == ["0", "1", "2"]
    assert first[0]["reference"]["answer"] == "18" and first[0]["meta"]["rollout"]["index"] == 0
    prompt = [r for r in llm_server.requests if "Janet" in r["text"]][0]["text"]
    assert prompt.endswith("Please reason step by step, and put your final answer within \\boxed{}.")
    verified = rubricate("verify", stdin=result.stdout).records()
    assert [r["feedback"]["outcome"]["correct"] for r in verified[:3]].count(True) >= 1


def test_a_killed_run_resumes_without_paying_twice(llm_server, tmp_path):
    rows = [{"id": f"r{i:04d}", "problem": f"problem number {i}"} for i in range(400)]
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    tmpl = template(tmp_path, "{{ problem }}")
    env = dict(os.environ, RUBRICATE_CACHE_DIR=str(tmp_path / "cache"))
    cmd = [sys.executable, "-m", "rubricate.cli.main", "generate", str(src), "--template", tmpl, "--into", "g",
           "--model", "openai/fake-model", "--api-base", llm_server.openai_base, "--concurrency", "4"]
    llm_server.latency = 0.01
    try:
        proc = subprocess.Popen(cmd + ["-o", str(tmp_path / "out.jsonl")], cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 60
        while llm_server.count() < 150 and time.time() < deadline:
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        answered_before = {r["text"] for r in llm_server.requests}
        assert 150 <= len(answered_before) < 400, "the run was not caught half-way"
        from rubricate.llm.cache import Cache

        with Cache(tmp_path / "cache" / "llm-cache.sqlite") as cache:
            succeeded = len(cache)  # what the killed run had received and stored
        llm_server.reset()
        resumed = subprocess.run(cmd + ["-o", str(tmp_path / "out.jsonl")], cwd=ROOT, env=env,
                                 capture_output=True, timeout=120)
        assert resumed.returncode == 0, resumed.stderr
        asked_again = {r["text"] for r in llm_server.requests} & answered_before
        # Nothing that had succeeded is asked again: exactly the requests missing from the cache are.
        assert llm_server.count() == 400 - succeeded
        # Those are the few in flight at the kill (answered by the server, not yet stored).
        assert len(asked_again) == len(answered_before) - succeeded <= 8
    finally:
        llm_server.latency = 0.0
    fresh_env = dict(env, RUBRICATE_CACHE_DIR=str(tmp_path / "fresh"))
    fresh = subprocess.run(cmd, cwd=ROOT, env=fresh_env, capture_output=True, timeout=120)
    assert (tmp_path / "out.jsonl").read_bytes() == fresh.stdout
