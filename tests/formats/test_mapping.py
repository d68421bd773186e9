import json

import pytest

from rubricate import schemas
from rubricate.errors import InputError, UsageError
from rubricate.formats.mapping import Mapper, parse_map


def test_map_moves_fields_and_keeps_the_rest_in_meta():
    mapper = Mapper(parse_map("problem=question,reference.answer=gold.value"))
    record = mapper({"question": "2+2?", "gold": {"value": 4, "source": "x"}, "response": "4", "k": [1]})
    assert record["problem"] == "2+2?"
    assert record["reference"] == {"answer": "4"}  # numbers become text
    assert record["response"] == "4"
    assert record["meta"] == {"gold": {"source": "x"}, "k": [1]}
    assert record["id"].startswith("sha256:")
    assert not list(schemas.errors(record))


def test_ids_are_stable_and_distinct():
    mapper = Mapper()
    a = mapper({"problem": "p", "response": "r1"})
    b = mapper({"problem": "p", "response": "r2"})
    assert a["id"] == mapper({"problem": "p", "response": "r1"})["id"]
    assert a["id"] != b["id"]
    assert mapper({"id": 7, "problem": "p"})["id"] == "7"


def test_existing_meta_merges_and_round_trips():
    mapper = Mapper()
    first = mapper({"problem": "p", "meta": {"a": 1}, "b": 2})
    assert first["meta"] == {"a": 1, "b": 2}
    assert mapper(json.loads(json.dumps(first))) == first


def test_missing_field_names_where_field_and_id():
    with pytest.raises(InputError) as err:
        Mapper()({"id": "r9", "question": "?"}, "in.jsonl:9")
    assert err.value.field == "problem"
    assert str(err.value).startswith("in.jsonl:9: field problem: missing")
    assert "r9" in str(err.value)
    with pytest.raises(InputError) as err:
        Mapper()({"problem": "p", "steps": "not a list"}, "f:1")
    assert err.value.field == "steps"


def test_bad_map_specs():
    with pytest.raises(UsageError):
        parse_map("problem")
    with pytest.raises(UsageError, match="not a record field"):
        parse_map("question=problem")
    with pytest.raises(UsageError, match="unknown preset"):
        Mapper(preset="nope")


def test_gsm8k_preset(shared_data):
    row = json.loads((shared_data / "gsm8k_test.jsonl").open().readline())
    record = Mapper(preset="gsm8k")(row)
    ref = record["reference"]
    assert record["problem"] == row["question"]
    assert ref["solution"] == row["answer"]
    assert ref["answer"] == row["answer"].rpartition("#### ")[2].replace(",", "")
    assert ref["steps"] and all("<<" not in s and "####" not in s for s in ref["steps"])
    assert len(ref["steps"]) == len(row["answer"].splitlines()) - 1


def test_math_preset_takes_the_boxed_answer_when_absent(shared_data):
    row = json.loads((shared_data / "math500.jsonl").open().readline())
    mapper = Mapper(preset="math")
    record = mapper(row)
    assert record["id"] == row["unique_id"]
    assert record["reference"]["answer"] == row["answer"]
    assert record["meta"] == {"subject": row["subject"], "level": row["level"]}
    row.pop("answer")
    assert mapper(row)["reference"]["answer"] == "\\left( 3, \\frac{\\pi}{2} \\right)"


def test_processbench_preset(shared_data):
    trace = json.loads((shared_data / "processbench_gsm8k.json").read_text())[3]
    record = Mapper(preset="processbench")(trace)
    assert record["steps"] == trace["steps"]
    assert record["meta"] == {"generator": trace["generator"], "label": trace["label"],
                              "final_answer_correct": trace["final_answer_correct"]}
    text = record["response"]
    assert [text[s:e] for s, e in record["step_spans"]] == trace["steps"]


def test_two_targets_may_share_one_source():
    record = Mapper(parse_map("response=solution"), "math")({"problem": "p", "solution": "so \\boxed{2}"})
    assert record["response"] == record["reference"]["solution"] == "so \\boxed{2}"
    assert record["reference"]["answer"] == "2" and "meta" not in record


def test_every_preset_is_offered_on_the_command_line():
    from rubricate.cli.options import PresetName
    from rubricate.formats.presets import PRESETS

    assert {p.value for p in PresetName} == set(PRESETS)
