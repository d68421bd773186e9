"""Rubric files (reading, validation, the errors a user sees), the checks that need no model on real
GSM8K, MATH-500 and ProcessBench records, and explicit / implicit aggregation and gates."""

from __future__ import annotations

import copy
import json
import re

import pytest

from helpers import EXAMPLES, ROOT
from rubricate import schemas
from rubricate.formats.mapping import Mapper
from rubricate.generators.rubric import score_static
from rubricate.records import response_text
from rubricate.rubrics import (GroupTally, Item, RubricError, check_item, explicit_score, format_problem, gate,
                               implicit_score, load_rubric, parse_rubric)

EXAMPLE_RUBRIC = ROOT / "examples" / "rubrics" / "gsm8k.yaml"


def item(id: str = "x", weight: int = 1, hard: bool = False, check: object = "llm", **kw) -> dict:
    return {"id": id, "title": id.title(), "description": f"{id} holds.", "weight": weight, "hard": hard,
            "check": check, **kw}


def rubric(*items: dict, name: str = "t") -> object:
    return parse_rubric({"name": name, "items": list(items)}, "test.yaml")


def processbench() -> list[dict]:
    mapper = Mapper({}, "processbench")
    lines = (EXAMPLES / "processbench_gsm8k.jsonl").read_text().splitlines()
    return [mapper(json.loads(line), f"example:{i + 1}") for i, line in enumerate(lines)]


def solutions_as_responses(shared_data, name: str, preset: str, n: int) -> list[dict]:
    """Real problems answered by their own reference solutions: what a perfect response looks like."""
    mapper = Mapper({}, preset)
    lines = (shared_data / name).read_text().splitlines()[:n]
    records = [mapper(json.loads(line), f"{name}:{i + 1}") for i, line in enumerate(lines)]
    for record in records:
        record["response"] = record["reference"]["solution"]
    return records


def met(rub, record) -> bool | None:
    return check_item(rub.items[0], record, response_text(record))[0]


# -- reading and validating --------------------------------------------------------------------------

def test_the_example_rubric_is_valid_and_reads_the_same_as_json(tmp_path):
    yaml_rubric = load_rubric(EXAMPLE_RUBRIC)
    assert 7 <= len(yaml_rubric.items) <= 20
    weights = {i.id: i.weight for i in yaml_rubric.items}
    assert weights["final-answer"] == 5 and min(weights.values()) < 0
    assert {i.kind for i in yaml_rubric.items} >= {"llm", "answer", "regex", "length"}
    assert [i.id for i in yaml_rubric.items if i.hard] == ["final-answer", "refusal"]
    import yaml

    as_json = tmp_path / "gsm8k.json"
    as_json.write_text(json.dumps(yaml.safe_load(EXAMPLE_RUBRIC.read_text())))
    json_rubric = load_rubric(as_json)
    assert json_rubric.hash == yaml_rubric.hash and json_rubric.items == yaml_rubric.items
    assert schemas.first_error(yaml_rubric.data, "rubric_file") is None


BAD_RUBRICS = [
    ("missing field", "items:\n  - {id: final, title: Final, description: Right., hard: true}\n",
     ["item 'final' (items[0])", "weight", "missing"]),
    ("unknown check", "items:\n  - {id: run-it, title: T, description: D., weight: 1, check: python}\n",
     ["item 'run-it'", "unknown check 'python'", "llm, answer, regex, length, format"]),
    ("unknown check object", "items:\n  - {id: run-it, title: T, description: D., weight: 1, check: {type: exec}}\n",
     ["item 'run-it'", "check.type", "unknown check 'exec'"]),
    ("bad regex", "items:\n  - {id: ok, title: T, description: D., weight: 1}\n"
                  "  - {id: boxed, title: T, description: D., weight: 2,"
                  " check: {type: regex, pattern: '\\\\boxed{['}}\n",
     ["item 'boxed' (items[1])", "check.pattern", "bad regular expression"]),
    ("regex without pattern", "items:\n  - {id: r, title: T, description: D., weight: 1, check: {type: regex}}\n",
     ["item 'r'", "pattern"]),
    ("typo in a key", "items:\n  - {id: w, title: T, description: D., wieght: 1}\n",
     ["item 'w'", "'wieght' was unexpected"]),
    ("weight as a word", "items:\n  - {id: w, title: T, description: D., weight: five}\n",
     ["item 'w'", "weight", "integer"]),
    ("duplicate ids", "items:\n  - {id: a, title: T, description: D., weight: 1}\n"
                      "  - {id: a, title: U, description: E., weight: 2}\n", ["item 'a' (items[1])", "twice"]),
    ("min above max",
     "items:\n  - {id: n, title: T, description: D., weight: 1, check: {type: length, min: 9, max: 3}}\n",
     ["item 'n'", "min 9 is above max 3"]),
    ("length without bounds", "items:\n  - {id: n, title: T, description: D., weight: 1, check: {type: length}}\n",
     ["item 'n'", "check"]),
    ("only pitfalls", "items:\n  - {id: p, title: T, description: D., weight: -2}\n",
     ["no item has a positive weight"]),
    ("no items", "name: empty\nitems: []\n", ["items"]),
    ("not a mapping", "- just\n- a list\n", ["a rubric is a mapping"]),
    ("bad yaml", "items:\n  - {id: a, title: [unclosed\n", ["not valid YAML", "line"]),
]


@pytest.mark.parametrize("case,text,expected", BAD_RUBRICS, ids=[c[0] for c in BAD_RUBRICS])
def test_malformed_rubric_files_name_the_file_and_the_item(tmp_path, case, text, expected):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(RubricError) as caught:
        load_rubric(path)
    message = caught.value.message
    assert message.startswith(f"{path}: "), message
    for part in expected:
        assert part in message, (part, message)
    assert caught.value.exit_code == 2


def test_a_rubric_file_never_executes_code(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.yaml"
    path.write_text(f"!!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(RubricError, match="not valid YAML"):
        load_rubric(path)
    assert not marker.exists()
    evil_json = tmp_path / "evil.json"
    evil_json.write_text('{"items": [{"id": "a", "title": "T", "description": "D", "weight": "__import__(\'os\')"}]}')
    with pytest.raises(RubricError, match="integer"):
        load_rubric(evil_json)


def test_a_missing_file_and_bad_json_say_so(tmp_path):
    with pytest.raises(RubricError, match="no such file"):
        load_rubric(tmp_path / "nope.yaml")
    bad = tmp_path / "r.json"
    bad.write_text('{"items": [}')
    with pytest.raises(RubricError, match=r"r.json: not valid JSON \(line 1"):
        load_rubric(bad)


# -- checks on real records --------------------------------------------------------------------------

def test_answer_check_agrees_with_processbench_annotation():
    answer = rubric(item("final", 5, check="answer"))
    records = processbench()
    verdicts = [met(answer, r) for r in records]
    agree = sum(v == r["meta"]["final_answer_correct"] for v, r in zip(verdicts, records))
    assert agree >= 78 and len(records) == 80
    assert {True, False} <= set(verdicts)
    assert "feedback" not in records[0]  # checking wrote nothing into the record


def test_answer_check_on_gsm8k_and_math500_reference_solutions(shared_data):
    answer = rubric(item("final", 5, check="answer"))
    gsm8k = solutions_as_responses(shared_data, "gsm8k_test.jsonl", "gsm8k", 40)
    math = solutions_as_responses(shared_data, "math500.jsonl", "math", 40)
    assert all(met(answer, r) is True for r in gsm8k)
    assert sum(met(answer, r) is True for r in math) >= 39
    wrong = copy.deepcopy(gsm8k[0])
    wrong["reference"]["answer"] = str(int(wrong["reference"]["answer"]) + 1)
    assert met(answer, wrong) is False


def test_answer_check_uses_an_existing_outcome_and_leaves_no_reference_undecided():
    answer = rubric(item("final", 5, check="answer"))
    record = processbench()[0]
    record["feedback"] = {"outcome": {"answer": "x", "correct": True, "reference": "24", "reason": None}}
    assert met(answer, record) is True  # the outcome was taken as it is, not recomputed
    bare = {"id": "b", "problem": "p", "response": "The answer is 3."}
    verdict, why = check_item(answer.items[0], bare, bare["response"])
    assert verdict is None and "no reference answer" in why
    silent = {"id": "s", "problem": "p", "response": "I am not sure.", "reference": {"answer": "3"}}
    no_fallback = rubric(item("final", 5, check={"type": "answer", "fallback": False}))
    assert check_item(no_fallback.items[0], silent, silent["response"])[0] is False


def test_regex_check_must_and_must_not_match_on_gsm8k_solutions(shared_data):
    records = solutions_as_responses(shared_data, "gsm8k_test.jsonl", "gsm8k", 30)
    annotated = [r for r in records if "<<" in r["response"]]
    assert len(annotated) >= 25
    calc = rubric(item("calc", 1, check={"type": "regex", "pattern": r"<<[^>]+=\d+>>"}))
    no_calc = rubric(item("calc", 1, check={"type": "regex", "pattern": r"<<[^>]+=\d+>>", "must": "not_match"}))
    for r in records:
        expected = re.search(r"<<[^>]+=\d+>>", r["response"]) is not None
        assert met(calc, r) is expected and met(no_calc, r) is (not expected)
    final = rubric(item("hash", 1, check={"type": "regex", "pattern": r"^#### \d+$", "flags": "m"}))
    assert all(met(final, r) for r in records)
    upper = rubric(item("janet", 1, check={"type": "regex", "pattern": "JANET", "flags": "i"}))
    assert met(upper, {**records[0], "response": "janet sells"}) is True
    assert "found 'janet'" in check_item(upper.items[0], records[0], "janet sells")[1]


def test_length_check_counts_characters_and_whitespace_tokens(shared_data):
    record = solutions_as_responses(shared_data, "math500.jsonl", "math", 1)[0]
    text = record["response"]
    chars, tokens = len(text), len(text.split())
    assert chars != tokens
    at = lambda unit, **b: met(rubric(item("n", 1, check={"type": "length", "unit": unit, **b})), record)  # noqa: E731
    assert at("chars", min=chars, max=chars) and not at("chars", min=chars + 1) and not at("chars", max=chars - 1)
    assert at("tokens", min=tokens, max=tokens) and not at("tokens", max=tokens - 1)
    assert at("tokens", min=0) and not at("tokens", min=tokens + 1)
    why = check_item(rubric(item("n", 1, check={"type": "length", "max": 5})).items[0], record, text)[1]
    assert why == f"{tokens} whitespace tokens (bounds ..5)"


def test_format_check_boxed_on_math500_gsm8k_and_processbench(shared_data):
    boxed = rubric(item("boxed", 1, check={"type": "format", "require": "boxed"}))
    assert all(met(boxed, r) for r in solutions_as_responses(shared_data, "math500.jsonl", "math", 30))
    assert not any(met(boxed, r) for r in solutions_as_responses(shared_data, "gsm8k_test.jsonl", "gsm8k", 30))
    traces = processbench()
    verdicts = [met(boxed, r) for r in traces]
    assert 0 < sum(verdicts) < len(traces)
    assert all(v == ("\\boxed{" in r["response"]) for v, r in zip(verdicts, traces))
    cut = {**traces[0], "response": traces[0]["response"].rsplit("}", 1)[0]}  # the box never closes
    if traces[0]["response"].count("\\boxed{") == 1:
        assert met(boxed, cut) is False


THINK_CASES = [
    ("<think>\n{t}\n</think>\nThe answer is 30.", None),
    ("{t}\n</think>\nThe answer is 30.", None),  # the chat template opened the block in the prompt
    ("  <think>{t}</think> 30", None),
    ("{t}", "no </think>"),
    ("<think>{t}\nThe answer is 30.", "<think> is never closed"),
    ("<think>{t}</think></think> 30", "</think> appears 2 times"),
    ("<think><think>{t}</think> 30", "<think> appears 2 times"),
    ("</think>{t}<think> 30", "<think> comes after </think>"),
    ("Sure! <think>{t}</think> 30", "text before <think>"),
    ("<think>{t}</think>\n  ", "nothing after </think>"),
]


@pytest.mark.parametrize("shape,problem", THINK_CASES)
def test_format_check_think_tags_on_a_real_trace(shape, problem):
    trace = processbench()[5]["response"]
    text = shape.replace("{t}", trace)
    assert format_problem("think", text) == problem
    think = rubric(item("think", 1, check={"type": "format", "require": ["think", "boxed"]}))
    verdict, why = check_item(think.items[0], {"response": text}, text)
    assert verdict is (problem is None and "\\boxed{" in trace)
    if problem:
        assert problem in why


# -- aggregation -------------------------------------------------------------------------------------

def items_of(*specs) -> tuple[Item, ...]:
    return rubric(*[item(f"i{k}", w, hard=h) for k, (w, h) in enumerate(specs)]).items


def test_explicit_score_is_met_weights_over_positive_weights_clipped():
    items = items_of((5, True), (3, False), (1, False), (-2, False))
    score = lambda *m: explicit_score(items, dict(zip(["i0", "i1", "i2", "i3"], m)))[0]  # noqa: E731
    assert score(True, True, True, False) == 1.0
    assert score(True, False, True, False) == round(6 / 9, 6)
    assert score(True, True, True, True) == round(7 / 9, 6)  # a met pitfall costs its weight
    assert score(False, False, False, True) == 0.0  # -2 / 9, clipped
    assert score(False, False, False, False) == 0.0
    undecided, why = explicit_score(items, {"i0": True, "i1": None, "i2": True, "i3": False})
    assert undecided is None and why == "undecided: i1"


def test_implicit_score_maps_the_rating_onto_zero_to_one():
    assert [implicit_score(r) for r in (1, 10, 7)] == [0.0, 1.0, round(6 / 9, 6)]
    assert implicit_score(None) is None


def test_gate_accepts_when_every_hard_item_passes():
    items = items_of((5, True), (3, False), (-2, True))
    assert gate(items, {"i0": True, "i1": False, "i2": False}) == ("accept", None)
    assert gate(items, {"i0": False, "i1": True, "i2": False}) == ("reject", None)
    assert gate(items, {"i0": True, "i1": True, "i2": True}) == ("reject", None)  # a hard pitfall was met
    assert gate(items, {"i0": None, "i1": True, "i2": False}) == (None, "gate undecided: i0")
    assert gate(items, {"i0": None, "i1": True, "i2": True})[0] == "reject"  # one failure decides
    assert gate(items_of((1, False)), {"i0": False}) == ("accept", None)  # nothing hard: nothing to fail


def test_group_tally_counts_gates_per_group():
    tally = GroupTally()
    for key, g in [("a", "accept"), ("a", "reject"), ("b", "reject"), ("b", "reject"), ("c", None), (None, "accept")]:
        tally.add(key, g)
    rows = {r["group"]: r for r in tally.rows()}
    assert rows["a"] == {"group": "a", "rollouts": 2, "accepted": 1, "rejected": 1, "undecided": 0,
                         "pass_rate": 0.5, "keeps_an_accepted_rollout": True}
    assert rows["b"]["keeps_an_accepted_rollout"] is False and rows["b"]["pass_rate"] == 0.0
    s = tally.summary()
    assert (s["groups"], s["groups_keeping_an_accepted_rollout"], s["groups_all_rejected"],
            s["groups_with_undecided"], s["rollouts"], s["accepted"]) == (3, 1, 1, 1, 5, 1)


def test_static_scoring_of_real_records_is_schema_valid():
    det = rubric(item("final", 5, hard=True, check="answer"),
                 item("boxed", 2, check={"type": "format", "require": "boxed"}),
                 item("short", 1, check={"type": "length", "max": 250}),
                 item("sorry", -1, check={"type": "regex", "pattern": "sorry", "flags": "i"}))
    records = processbench()
    for record in records:
        score_static(record, det)
        assert schemas.first_error(record) is None, schemas.first_error(record)
        entry = record["feedback"]["rubric"]
        assert [i["id"] for i in entry["items"]] == ["final", "boxed", "short", "sorry"]
        final = entry["items"][0]["met"]
        assert entry["gate"] == ("accept" if final else "reject")
        earned = sum(i["weight"] for i in entry["items"] if i["met"])
        assert entry["score"] == round(max(0.0, earned / 8), 6)
        assert entry["rubric"] == {"name": "t", "source": "test.yaml", "hash": det.hash}
    gates = {r["feedback"]["rubric"]["gate"] for r in records}
    assert gates == {"accept", "reject"}


def test_static_scoring_without_a_response_or_with_judged_items_says_why():
    mixed = rubric(item("final", 5, hard=True, check="answer"), item("clear", 2))
    empty = score_static({"id": "e", "problem": "p", "reference": {"answer": "1"}}, mixed)["feedback"]["rubric"]
    assert empty["score"] is None and empty["gate"] is None and "no response" in empty["reason"]
    judged = score_static({"id": "j", "problem": "p", "response": "The answer is 1.", "reference": {"answer": "1"}},
                          mixed)["feedback"]["rubric"]
    assert judged["items"][0]["met"] is True and judged["items"][1]["met"] is None
    assert "--model" in judged["error"]["reason"] and judged["gate"] == "accept" and judged["score"] is None
    assert schemas.first_error({"id": "j", "problem": "p", "feedback": {"rubric": judged}}) is None


def test_a_records_own_rubric_is_used_and_an_invalid_one_is_an_error_on_that_record(tmp_path):
    own = {"items": [item("final", 5, hard=True, check="answer")]}
    record = {"id": "r", "problem": "p", "response": "The answer is 4.", "reference": {"answer": "4"}, "rubric": own}
    entry = score_static(record, None)["feedback"]["rubric"]
    assert entry["gate"] == "accept" and entry["rubric"]["source"] == "record"
    path = tmp_path / "r.yaml"
    path.write_text("items:\n  - {id: final, title: T, description: D., weight: 5, check: answer}\n")
    by_path = score_static({**record, "rubric": str(path)}, None)["feedback"]["rubric"]
    assert by_path["score"] == 1.0 and by_path["rubric"]["source"] == str(path)
    broken = {**record, "rubric": {"items": [{"id": "final", "title": "T", "weight": 5}]}}
    bad = score_static(broken, None)["feedback"]["rubric"]
    assert "record: item 'final' (items[0]): description: missing" in bad["error"]["reason"]
    assert bad["score"] is None and bad["items"] == []
    none = score_static({k: v for k, v in record.items() if k != "rubric"}, None)["feedback"]["rubric"]
    assert "no `rubric`" in none["error"]["reason"]
