"""verl and Critique-GRPO parquet, written by `rubricate export` and read back with pyarrow, checked
field by field against verl's documented five fields and the columns Critique-GRPO's code reads."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from helpers import EXAMPLES
from rubricate.formats.export import EXPORTERS, ExportOptions, Unusable
from rubricate.formats.mapping import Mapper

GSM8K_INSTRUCTION = "Let's think step by step and output the final answer after \"####\"."
MATH_INSTRUCTION = "Let's think step by step and output the final answer within \\boxed{}."
CRITIQUE_GRPO_SUFFIX = "\nPlease reason step by step, and put your final answer within \\boxed{}."

# The Arrow types of zhangxy-2019/critique-GRPO's released openr1_math_4k_train_qwenformat/test.parquet
# (read with pyarrow.parquet.read_table), by field name: a row we write must read back the same way.
CRITIQUE_GRPO_TYPES = {
    "data_source": pa.string(),
    "prompt": pa.list_(pa.struct([("content", pa.string()), ("role", pa.string())])),
    "ability": pa.string(),
    "reward_model": {"ground_truth": pa.string(), "style": pa.string()},
    "extra_info": {"index": pa.int64(), "split": pa.string()},
}


def by_name(struct_type: pa.DataType) -> dict:
    return {f.name: f.type for f in struct_type}


def same_message_type(ours: pa.DataType, theirs: pa.DataType) -> bool:
    """list<struct<...>> with the same fields, whatever their order."""
    return pa.types.is_list(ours) and by_name(ours.value_type) == by_name(theirs.value_type)


@pytest.fixture(scope="module")
def math_records() -> list[dict]:
    from helpers import SHARED_DATA

    if not (SHARED_DATA / "math500.jsonl").exists():
        pytest.skip("real datasets not found")
    mapper = Mapper(preset="math")
    return [mapper(json.loads(line)) for line in (SHARED_DATA / "math500.jsonl").read_text().splitlines()[:30]]


def test_verl_parquet(rubricate, tmp_path, shared_data):
    out = tmp_path / "gsm8k"
    result = rubricate("export", str(shared_data / "gsm8k_test.jsonl"), "--preset", "gsm8k", "--to", "verl",
                       "-o", str(out), "--format", "parquet", "--test-size", "0.25")
    assert result.code == 0, result.stderr
    train, test = pq.read_table(out / "train.parquet"), pq.read_table(out / "test.parquet")
    assert train.num_rows + test.num_rows == 1319
    assert test.num_rows == round(0.25 * 1319)
    gold = {json.loads(line)["question"]: json.loads(line)["answer"]
            for line in (shared_data / "gsm8k_test.jsonl").read_text().splitlines()}
    for table, split in ((train, "train"), (test, "test")):
        schema = table.schema
        assert schema.names == ["data_source", "prompt", "ability", "reward_model", "extra_info"]
        assert schema.field("data_source").type == pa.string()
        assert same_message_type(schema.field("prompt").type, CRITIQUE_GRPO_TYPES["prompt"])
        assert by_name(schema.field("reward_model").type) == {"style": pa.string(), "ground_truth": pa.string()}
        info = by_name(schema.field("extra_info").type)
        assert info["split"] == pa.string() and info["index"] == pa.int64()
        for i, row in enumerate(table.to_pylist()):
            assert row["data_source"] == "openai/gsm8k"  # verl's gsm8k reward
            assert row["ability"] == "math"
            (turn,) = row["prompt"]
            assert turn["role"] == "user"
            question = row["extra_info"]["question"]
            assert turn["content"] == question + " " + GSM8K_INSTRUCTION
            # verl's extract_solution: the number after "#### ", commas dropped
            assert row["reward_model"] == {"style": "rule",
                                           "ground_truth": gold[question].split("#### ")[-1].replace(",", "")}
            assert row["extra_info"]["split"] == split and row["extra_info"]["index"] == i
    problems_train = {r["extra_info"]["question"] for r in train.to_pylist()}
    problems_test = {r["extra_info"]["question"] for r in test.to_pylist()}
    assert not problems_train & problems_test


def test_verl_math_rows_use_the_boxed_reward(math_records):
    for record in math_records:
        (row,) = EXPORTERS["verl"](record, ExportOptions())
        assert row["data_source"] == "DigitalLearningGmbH/MATH-lighteval"
        assert row["prompt"][0]["content"] == record["problem"] + " " + MATH_INSTRUCTION
        assert row["reward_model"]["ground_truth"] == record["reference"]["answer"]
    (row,) = EXPORTERS["verl"](math_records[0], ExportOptions(data_source="mine", instruction="", system="Be brief."))
    assert row["data_source"] == "mine"
    assert row["prompt"] == [{"role": "system", "content": "Be brief."},
                             {"role": "user", "content": math_records[0]["problem"]}]


def test_critique_grpo_parquet(rubricate, tmp_path):
    """Rows as Critique-GRPO's RLHFDataset and rollout read them: the prompt as in its released data,
    `target` = [{role: assistant, content}], `reward_model.question`, plus the offline critique."""
    from rubricate.generators.critique import simple_record

    mapper = Mapper(preset="processbench")
    records = [simple_record(mapper(json.loads(line)), "ground-truth")
               for line in (EXAMPLES / "processbench_gsm8k.jsonl").read_text().splitlines()[:20]]
    source = tmp_path / "critiqued.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in records))
    out = tmp_path / "cg.parquet"
    result = rubricate("export", str(source), "--to", "critique-grpo", "-o", str(out))
    assert result.code == 0, result.stderr
    table = pq.read_table(out)
    schema = table.schema
    assert schema.names == ["data_source", "prompt", "ability", "reward_model", "extra_info", "target"]
    for name in ("data_source", "ability"):
        assert schema.field(name).type == CRITIQUE_GRPO_TYPES[name]
    assert same_message_type(schema.field("prompt").type, CRITIQUE_GRPO_TYPES["prompt"])
    assert same_message_type(schema.field("target").type, CRITIQUE_GRPO_TYPES["prompt"])
    reward = by_name(schema.field("reward_model").type)
    assert {k: reward[k] for k in CRITIQUE_GRPO_TYPES["reward_model"]} == CRITIQUE_GRPO_TYPES["reward_model"]
    assert reward["question"] == pa.string()
    info = by_name(schema.field("extra_info").type)
    assert {k: info[k] for k in CRITIQUE_GRPO_TYPES["extra_info"]} == CRITIQUE_GRPO_TYPES["extra_info"]
    rows = table.to_pylist()
    seen = []
    for record in records:
        if record["problem"] in seen:
            continue
        seen.append(record["problem"])
    assert len(rows) == len(seen)  # one row per problem
    by_problem = {r["problem"]: r for r in reversed(records)}
    for i, row in enumerate(rows):
        system, user = row["prompt"]
        assert system == {"role": "system", "content": "You are a helpful assistant."}
        assert user["role"] == "user" and user["content"].endswith(CRITIQUE_GRPO_SUFFIX)
        problem = user["content"][: -len(CRITIQUE_GRPO_SUFFIX)]
        record = by_problem[problem]
        assert row["reward_model"] == {"ground_truth": record["reference"]["answer"], "style": "rule",
                                       "question": problem}
        # what the rollout reads: target[0]["content"], the expert solution
        assert row["target"] == [{"role": "assistant", "content": record["reference"]["solution"]}]
        assert row["extra_info"]["index"] == i and row["extra_info"]["split"] == "train"
        assert row["extra_info"]["critique"] == record["feedback"]["critique"]["text"]
        assert row["extra_info"]["critique_type"] == "ground-truth"


def test_critique_grpo_needs_an_answer_and_a_solution(math_records):
    record = dict(math_records[0], reference={"answer": "3"})
    with pytest.raises(Unusable, match="expert solution"):
        EXPORTERS["critique-grpo"](record, ExportOptions())
    with pytest.raises(Unusable, match="reference answer"):
        EXPORTERS["critique-grpo"](dict(math_records[0], reference={"solution": "x"}), ExportOptions())
    (row,) = EXPORTERS["critique-grpo"](math_records[0], ExportOptions())
    assert row["data_source"] == "DigitalLearningGmbH/MATH-lighteval"
    assert "critique" not in row["extra_info"]
