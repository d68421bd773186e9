"""`rubricate rubric` (score) and `rubricate rubric author` end to end: both spellings, errors a user
sees, gates per group on stderr, in --groups and in `stats`, and author | score as one pipeline."""

from __future__ import annotations

import json
import re

from helpers import EXAMPLES, ROOT, write_jsonl

EXAMPLE = str(EXAMPLES / "processbench_gsm8k.jsonl")
GSM8K_RUBRIC = str(ROOT / "examples" / "rubrics" / "gsm8k.yaml")
DETERMINISTIC = """name: checks only
items:
  - {id: final, title: Final answer, description: The final answer is right., weight: 5, hard: true, check: answer}
  - {id: boxed, title: Boxed, description: The answer is boxed., weight: 2, check: {type: format, require: boxed}}
  - {id: short, title: Short, description: At most 250 words., weight: 1, check: {type: length, max: 250}}
  - {id: apology, title: Apology, description: It apologises., weight: -1,
     check: {type: regex, pattern: sorry, flags: i}}
"""
_ID = re.compile(r'^- id "([^"]+)"', re.M)


def rubric_file(tmp_path, text=DETERMINISTIC, name="checks.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def judge_all_met(server) -> None:
    def reply(req: dict) -> str:
        text = req["text"]
        ids = _ID.findall(text.rpartition("\nCriteria:\n")[2])
        return json.dumps({"items": [{"id": i, "rationale": "seen", "met": i not in ("hedges", "refusal", "misreads")}
                                     for i in ids]})
    server.script(lambda req: "<response>" in req["text"], reply)


def test_both_spellings_score_without_a_model(rubricate, tmp_path):
    path = rubric_file(tmp_path)
    short = rubricate("rubric", EXAMPLE, "--preset", "processbench", "--rubric", path)
    assert short.code == 0, short.stderr
    long = rubricate("rubric", "score", EXAMPLE, "--preset", "processbench", "--rubric", path)
    assert long.stdout == short.stdout
    records = short.records()
    assert len(records) == 80
    gates = [r["feedback"]["rubric"]["gate"] for r in records]
    expected = ["accept" if r["meta"]["final_answer_correct"] else "reject" for r in records]
    assert sum(g == e for g, e in zip(gates, expected)) >= 78
    accepted = gates.count("accept")
    assert f"rubric gates: {accepted} accepted, {80 - accepted} rejected, 0 undecided of 80" in short.stderr
    from_stdin = rubricate("rubric", "--rubric", path, "--preset", "processbench",
                           stdin=(EXAMPLES / "processbench_gsm8k.jsonl").read_text())
    assert from_stdin.stdout == short.stdout


def test_a_malformed_rubric_file_is_a_usage_error_naming_file_and_item(rubricate, tmp_path):
    bad = rubric_file(tmp_path, "items:\n  - {id: calc, title: C, description: D., weight: 2, "
                                "check: {type: regex, pattern: '<<('}}\n", "bad.yaml")
    result = rubricate("rubric", EXAMPLE, "--preset", "processbench", "--rubric", bad)
    assert result.code == 2 and result.stdout == ""
    assert result.stderr.startswith(f"Error: {bad}: item 'calc' (items[0]): check.pattern: bad regular expression")
    assert "Traceback" not in result.stderr and "Hint:" in result.stderr
    missing = rubricate("rubric", EXAMPLE, "--rubric", str(tmp_path / "nope.yaml"))
    assert missing.code == 2 and "no such file" in missing.stderr


def test_judged_items_need_a_model(rubricate):
    result = rubricate("rubric", EXAMPLE, "--preset", "processbench", "--rubric", GSM8K_RUBRIC)
    assert result.code == 2
    assert "items quantities, arithmetic, steps-follow, units, answers-another-question, hedges" in result.stderr
    assert "give --model" in result.stderr
    both = rubricate("rubric", EXAMPLE, "--rubric", GSM8K_RUBRIC, "--model", "openai/m", "--per-item", "--implicit")
    assert both.code == 2 and "exclude each other" in both.stderr
    implicit = rubricate("rubric", EXAMPLE, "--rubric", GSM8K_RUBRIC, "--implicit")
    assert implicit.code == 2 and "--implicit needs a judge" in implicit.stderr


def test_records_without_a_rubric_are_bad_input(rubricate, tmp_path):
    result = rubricate("rubric", EXAMPLE, "--preset", "processbench")
    assert result.code == 1 and "field rubric: required" in result.stderr
    out = tmp_path / "out.jsonl"
    skipped = rubricate("rubric", EXAMPLE, "--preset", "processbench", "--on-error", "skip", "-o", str(out))
    assert skipped.code == 0 and out.read_text() == ""
    assert len((tmp_path / "out.jsonl.rejects.jsonl").read_text().splitlines()) == 80


def test_gates_per_group_on_stderr_in_a_file_and_in_stats(rubricate, llm_server, tmp_path):
    judge_all_met(llm_server)
    groups = tmp_path / "groups.jsonl"
    result = rubricate("rubric", EXAMPLE, "--preset", "processbench", "--map", "group=generator",
                       "--rubric", GSM8K_RUBRIC, "--model", "openai/fake-model", "--api-base", llm_server.openai_base,
                       "--group-by", "group", "--groups", str(groups))
    assert result.code == 0, result.stderr
    records = result.records()
    assert llm_server.count() == 80  # one judge call per record
    by_group: dict[str, list[str]] = {}
    for r in records:
        by_group.setdefault(r["group"], []).append(r["feedback"]["rubric"]["gate"])
    rows = {row["group"]: row for row in map(json.loads, groups.read_text().splitlines())}
    assert set(rows) == set(by_group) and len(rows) > 3
    for key, gates in by_group.items():
        accepted = gates.count("accept")
        assert (rows[key]["rollouts"], rows[key]["accepted"]) == (len(gates), accepted)
        assert rows[key]["pass_rate"] == round(accepted / len(gates), 4)
        assert rows[key]["keeps_an_accepted_rollout"] is (accepted > 0)
    kept = sum(row["keeps_an_accepted_rollout"] for row in rows.values())
    assert f"gates by group: {len(rows)} groups, {kept} keep an accepted rollout" in result.stderr
    stats = json.loads(rubricate("stats", "--json", stdin=result.stdout).stdout)["rubric"]
    accepted = sum(row["accepted"] for row in rows.values())
    assert stats["gates"] == {"accept": accepted, "reject": 80 - accepted, "undecided": 0}
    assert stats["groups"]["groups"] == len(rows)
    assert stats["groups"]["groups_keeping_an_accepted_rollout"] == kept
    assert stats["groups"]["groups_all_rejected"] == len(rows) - kept
    assert stats["modes"] == {"explicit": 80} and stats["errors"] == 0


def test_unreadable_judges_keep_the_record_and_exit_3(rubricate, llm_server, tmp_path):
    llm_server.script(lambda req: True, '{"items": [{"id": "quantities", "met": "kind of"}]}')
    out = tmp_path / "out.jsonl"
    result = rubricate("rubric", EXAMPLE, "--preset", "processbench", "--rubric", GSM8K_RUBRIC, "--model",
                       "openai/fake-model", "--api-base", llm_server.openai_base, "-o", str(out))
    assert result.code == 3 and "80 of 80 records kept an error" in result.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 80 and llm_server.count() == 160  # each answer got one repair request
    entry = records[0]["feedback"]["rubric"]
    assert "quantities (verdict 'kind of' is not true or false" in entry["error"]["reason"]
    assert entry["items"][0]["met"] is not None  # the answer check still counts


def test_author_then_score_as_one_pipeline(rubricate, llm_server, shared_data, tmp_path):
    src = tmp_path / "gsm8k.jsonl"
    src.write_text("".join((shared_data / "gsm8k_test.jsonl").read_text().splitlines(True)[:4]))

    def rubric(req: dict) -> str:
        answer = re.search(r"Reference answer \(correct\): (\S+)", req["text"]).group(1)
        items = [{"id": "final", "title": "Final answer", "description": f"Essential Criteria: The answer is {answer}.",
                  "weight": 5, "hard": True, "check": "answer"},
                 {"id": "misreads", "title": "Misreads", "description": "Pitfall Criteria: Misreads a number.",
                  "weight": -2}]
        items += [{"id": f"s{k}", "title": f"Step {k}", "description": f"Important Criteria: step {k}.", "weight": 3}
                  for k in range(6)]
        return json.dumps({"items": items})

    llm_server.script(lambda req: "Write a rubric" in req["text"], rubric)
    authored = rubricate("rubric", "author", str(src), "--preset", "gsm8k", "--model", "openai/fake-model",
                         "--api-base", llm_server.openai_base)
    assert authored.code == 0, authored.stderr
    records = authored.records()
    assert all(len(r["rubric"]["items"]) == 8 for r in records)
    # Each rollout answers with the reference solution: the answer item is met, the judge decides the rest.
    for r in records:
        r["response"] = r["reference"]["solution"]
    judge_all_met(llm_server)
    scored = rubricate("rubric", "--model", "openai/fake-model", "--api-base", llm_server.openai_base,
                       stdin="".join(json.dumps(r) + "\n" for r in records))
    assert scored.code == 0, scored.stderr
    for record in scored.records():
        entry = record["feedback"]["rubric"]
        assert entry["rubric"]["source"] == "record" and entry["gate"] == "accept"
        assert [i["met"] for i in entry["items"]] == [True, False] + [True] * 6
        assert entry["score"] == 1.0


def test_author_failures_exit_3_and_the_group_help_lists_both_commands(rubricate, llm_server, tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [{"id": "p1", "problem": "What is 2 + 2?"}])
    llm_server.script(lambda req: True, "No.")
    result = rubricate("rubric", "author", str(src), "--model", "openai/fake-model", "--api-base",
                       llm_server.openai_base)
    assert result.code == 3 and "error" in result.records()[0]["rubric"]
    helped = rubricate("rubric", "--help")
    assert helped.code == 0 and "score" in helped.stdout and "author" in helped.stdout
