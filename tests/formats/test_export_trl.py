"""TRL formats, built from what rubricate's generators write, and read by TRL's own trainers: PRMTrainer
tokenizes `trl-stepwise`, GRPOTrainer runs on `srl` and `trl-grpo` and calls the rewards, DPOTrainer and
SFTTrainer train a step on `trl-dpo`, `trl-sft` and `thinkprm-sft`.

The models are tiny Qwen2s and the tokenizer a byte-level BPE trained here on the rows; nothing is
downloaded. The refinements and judge chains are written by the real `refine` and `label` generators
from a scripted model, on real ProcessBench GSM8K traces.
"""

from __future__ import annotations

import asyncio
import json
import re

import pytest

from helpers import EXAMPLES
from rubricate.formats.export import EXPORTERS, FORMATS, ExportOptions, Unusable
from rubricate.formats.mapping import Mapper
from rubricate.llm.types import Completion
from rubricate.rewards import answer_reward, srl_reward, srl_score

# --- records made by the generators ------------------------------------------------------------------


class Scripted:
    """A model whose answers a function writes from the request."""

    spec = "openai/scripted"
    model = "scripted"

    def __init__(self, answer):
        self.answer = answer

    async def complete(self, request):
        texts = self.answer(request)
        return Completion(texts=texts, finish_reasons=["stop"] * len(texts))


@pytest.fixture(scope="module")
def traces() -> list[dict]:
    mapper = Mapper({}, "processbench")
    return [mapper(json.loads(line)) for line in open(EXAMPLES / "processbench_gsm8k.jsonl", encoding="utf-8")]


def owner(records: list[dict], request) -> dict:
    text = request.messages[0]["content"]
    return next(r for r in records if r["problem"] in text)


@pytest.fixture(scope="module")
def refined(traces) -> list[dict]:
    """20 traces (10 wrong, 10 right) critiqued (Critique-GRPO's ground-truth critique) and refined twice: a
    wrong rewrite, then one that ends on the reference answer."""
    from rubricate.generators.critique import simple_record
    from rubricate.generators.refine import refine_record
    from rubricate.prompts import bundled

    records = [simple_record(json.loads(json.dumps(r)), "ground-truth") for r in traces[30:50]]

    def answer(request):
        record = owner(records, request)
        body = re.sub(r"<<[^>]*>>", "", record["reference"]["solution"].split("\n####")[0])
        return [f"{body}\nSo the answer is \\boxed{{{int(record['reference']['answer']) + 1}}}.",
                f"{body}\nSo the answer is \\boxed{{{record['reference']['answer']}}}."]

    async def go():
        return await asyncio.gather(*(refine_record(r, Scripted(answer), template=bundled("refine"), samples=2,
                                                    params={}) for r in records))
    return asyncio.run(go())


def verification(steps: int, first: int) -> str:
    lines = []
    for i in range(steps):
        verdict = "incorrect" if i == first else "correct"
        lines.append(f"Step {i + 1}: checking the arithmetic of this step. The step is \\boxed{{{verdict}}}")
        if i == first:
            break
    lines.append("Is the solution correct? " + ("Yes" if first == -1 else "No"))
    return "\n" + "\n".join(lines)


@pytest.fixture(scope="module")
def judged(traces) -> list[dict]:
    """ThinkPRM-style judge chains for 16 traces (8 with an error): sample 0 finds ProcessBench's own first
    error, sample 1 another one."""
    from rubricate.generators.label_judge import label_record
    from rubricate.prompts import bundled

    records = [json.loads(json.dumps(r)) for r in traces[32:48]]

    def answer(request):
        record = owner(records, request)
        n, first = len(record["steps"]), record["meta"]["label"]
        other = 0 if first != 0 else -1
        return [verification(n, first), verification(n, other)]

    async def go():
        return await asyncio.gather(*(label_record(r, Scripted(answer), template=bundled("label_thinkprm"),
                                                   parse="thinkprm", samples=2) for r in records))
    return asyncio.run(go())


def export(fmt: str, records: list[dict], **kw) -> list[dict]:
    out = []
    for record in records:
        try:
            out += EXPORTERS[fmt](record, ExportOptions(policy=FORMATS[fmt].policy, **kw))
        except Unusable:
            pass
    return out


# --- rows ------------------------------------------------------------------------------------------------

def test_sft_and_dpo_rows(refined):
    sft, dpo = export("trl-sft", refined), export("trl-dpo", refined)
    assert len(sft) == len(refined)  # every record has a correct refinement
    wrong = [r for r in refined if r["feedback"]["outcome"]["correct"] is False]
    assert 0 < len(dpo) == len(wrong) < len(refined)
    for row, record in zip(sft, refined):
        assert list(row) == ["prompt", "completion", "id"]
        assert row["prompt"] == [{"role": "user", "content": record["problem"]}]
        chosen = record["feedback"]["refinement"]["samples"][1]
        assert chosen["correct"] is True and record["feedback"]["refinement"]["chosen"] == 1
        assert row["completion"] == [{"role": "assistant", "content": chosen["text"]}]
    for row, record in zip(dpo, wrong):
        assert list(row) == ["prompt", "chosen", "rejected", "id"]
        assert row["chosen"][0]["content"].endswith(f"\\boxed{{{record['reference']['answer']}}}.")
        assert row["rejected"] == [{"role": "assistant", "content": record["response"]}]


def test_thinkprm_rows_keep_the_chains_that_agree_with_gold(judged):
    rows = export("thinkprm-sft", judged)
    assert len(rows) == len(judged)  # sample 0 of each record, never sample 1
    for row, record in zip(rows, judged):
        first = record["meta"]["label"]
        steps = record["steps"]
        assert row["cot"].startswith("Let's verify step by step:")
        assert row["cot"] == record["feedback"]["step_labels"]["details"]["texts"][0]
        assert row["prefix_steps"] == steps
        assert row["prefix"] == "\n".join(f"Step {i + 1}: {s.strip()}" for i, s in enumerate(steps))
        assert row["gt_step_labels"] == (["+"] * len(steps) if first == -1 else
                                         ["+"] * first + ["-"] * (len(steps) - first))
        assert row["prefix_label"] is (first == -1)
        user, assistant = row["messages"]
        assert user["content"].startswith("You are given a math problem and a proposed step-by-step solution:")
        assert f"[Math Problem]\n\n{record['problem']}\n\n[Solution]\n\n{row['prefix']}\n\n" in user["content"]
        assert assistant == {"role": "assistant", "content": row["cot"]}
    # without gold labels there is nothing to select chains with
    stripped = json.loads(json.dumps(judged[0]))
    del stripped["meta"]["label"]
    with pytest.raises(Unusable, match="gold"):
        EXPORTERS["thinkprm-sft"](stripped, ExportOptions())


def test_srl_rows(shared_data):
    mapper = Mapper(preset="gsm8k")
    lines = (shared_data / "gsm8k_test.jsonl").read_text().splitlines()[:40]
    for line in lines:
        record = mapper(json.loads(line))
        steps = record["reference"]["steps"]
        rows = EXPORTERS["srl"](record, ExportOptions())
        assert len(rows) == len(steps) - 1  # N steps, N-1 rows
        for k, row in enumerate(rows, start=1):
            system, user = row["prompt"]
            assert system["role"] == "system" and "<think>" in system["content"] and "</think>" in system["content"]
            assert user["content"].startswith(f"Problem:\n{record['problem']}\n\n")
            assert user["content"].endswith("\n".join(steps[:k]))  # the expert's steps so far
            assert steps[k] not in user["content"]
            assert row["expert_action"] == steps[k]
            assert row["step"] == k and row["record_id"] == record["id"]
    with pytest.raises(Unusable, match="at least 2"):
        EXPORTERS["srl"]({"id": "one", "problem": "p", "reference": {"steps": ["only"]}}, ExportOptions())


def test_srl_reward():
    expert = "She makes 9 * 2 = $18 every day."
    assert srl_score("<think>double it</think>She makes 9 * 2 = $18 every day.", expert) == 1.0
    partial = srl_score("<think>hm</think> She makes 9 * 3 = $27.", expert)
    assert 0 < partial < 1
    from difflib import SequenceMatcher

    a, b = "She makes 9 * 3 = $27.", expert
    matched = sum(block.size for block in SequenceMatcher(None, a, b).get_matching_blocks())
    assert partial == pytest.approx(2 * matched / (len(a) + len(b)))  # R = 2M/T
    for malformed in ("She makes $18", "<think>no close", "<think>a</think>", "<think>a</think>b</think>c"):
        assert srl_score(malformed, expert) == -1.0
    conversational = [[{"role": "assistant", "content": "<think>x</think>" + expert}], [{"role": "assistant",
                                                                                       "content": "nope"}]]
    assert srl_reward(conversational, [expert, expert], trainer_state=None) == [1.0, -1.0]


def test_answer_reward():
    assert answer_reward(["so \\boxed{18}", "so \\boxed{17}", "eighteen"], ["18", "18", "18"]) == [1.0, 0.0, 0.0]


# --- TRL's own trainers ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trl_stack():
    pytest.importorskip("trl")
    pytest.importorskip("torch")
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config

    def tokenizer(texts: list[str]) -> PreTrainedTokenizerFast:
        bpe = Tokenizer(models.BPE(unk_token="<unk>"))
        bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        bpe.decoder = decoders.ByteLevel()
        bpe.train_from_iterator(texts, trainers.BpeTrainer(
            vocab_size=600, special_tokens=["<unk>", "<pad>", "<|im_start|>", "<|im_end|>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
        tok = PreTrainedTokenizerFast(tokenizer_object=bpe, unk_token="<unk>", pad_token="<pad>",
                                      eos_token="<|im_end|>")
        tok.chat_template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
                             "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
        return tok

    def config(tok, **kw) -> Qwen2Config:
        return Qwen2Config(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                           num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=4096,
                           pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, **kw)

    common = dict(report_to="none", max_steps=1, per_device_train_batch_size=2, use_cpu=True, logging_steps=1,
                  save_strategy="no")
    return tokenizer, config, common


def texts_of(rows: list[dict]) -> list[str]:
    out = []

    def walk(value):
        if isinstance(value, str):
            out.append(value)
        elif isinstance(value, list):
            for v in value:
                walk(v)
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)
    walk(rows)
    return out


def test_prm_trainer_tokenizes_stepwise_rows(traces, trl_stack, tmp_path):
    from datasets import Dataset
    from transformers import Qwen2ForTokenClassification
    from trl.experimental.prm import PRMConfig, PRMTrainer

    tokenizer, config, common = trl_stack
    rows = export("trl-stepwise", traces[:12])
    tok = tokenizer(texts_of(rows))
    model = Qwen2ForTokenClassification(config(tok, num_labels=2))
    trainer = PRMTrainer(model=model, args=PRMConfig(output_dir=str(tmp_path), **common),
                         train_dataset=Dataset.from_list(rows), processing_class=tok)
    tokenized = trainer.train_dataset
    assert set(tokenized.column_names) == {"labels", "input_ids"}
    separator = tok.encode("\n", add_special_tokens=False)
    for row, example in zip(rows, tokenized):
        marked = [(i, label) for i, label in enumerate(example["labels"]) if label != -100]
        # one label per step, on the last token of "step + separator", equal to the exported bool
        assert [label for _, label in marked] == [int(v) for v in row["labels"]]
        ids = example["input_ids"]
        assert all(ids[i - len(separator) + 1:i + 1] == separator for i, _ in marked)
        assert tok.decode(ids[:marked[0][0] + 1]).endswith(row["completions"][0] + "\n")
    assert trainer.train().global_step == 1


def test_grpo_trainer_runs_srl_rows_with_the_srl_reward(shared_data, trl_stack, tmp_path):
    from datasets import Dataset
    from transformers import Qwen2ForCausalLM
    from trl import GRPOConfig, GRPOTrainer

    tokenizer, config, common = trl_stack
    mapper = Mapper(preset="gsm8k")
    records = [mapper(json.loads(line)) for line in (shared_data / "gsm8k_test.jsonl").read_text().splitlines()[:3]]
    rows = export("srl", records)[:4]
    tok = tokenizer(texts_of(rows) + ["<think>", "</think>"])
    calls = []

    def srl_reward_recorded(completions, expert_action, **kwargs):
        rewards = srl_reward(completions, expert_action, **kwargs)
        calls.append((completions, expert_action, rewards))
        return rewards

    args = GRPOConfig(output_dir=str(tmp_path), num_generations=2, max_completion_length=8, **common)
    trainer = GRPOTrainer(model=Qwen2ForCausalLM(config(tok)), reward_funcs=[srl_reward_recorded], args=args,
                          train_dataset=Dataset.from_list(rows), processing_class=tok)
    trainer.train()
    assert calls, "GRPOTrainer never called the reward"
    completions, actions, rewards = calls[0]
    assert set(actions) <= {r["expert_action"] for r in rows}  # the column reached the reward
    assert rewards == [srl_score(c[0]["content"], a) for c, a in zip(completions, actions)]
    logged = [h for h in trainer.state.log_history if "rewards/srl_reward_recorded/mean" in h]
    assert logged and logged[0]["rewards/srl_reward_recorded/mean"] == pytest.approx(sum(rewards) / len(rewards))


def test_grpo_trainer_runs_trl_grpo_rows(shared_data, trl_stack, tmp_path):
    from datasets import Dataset
    from transformers import Qwen2ForCausalLM
    from trl import GRPOConfig, GRPOTrainer

    tokenizer, config, common = trl_stack
    mapper = Mapper(preset="math")
    records = [mapper(json.loads(line)) for line in (shared_data / "math500.jsonl").read_text().splitlines()[:4]]
    rows = export("trl-grpo", records)
    assert [r["solution"] for r in rows] == [r["reference"]["answer"] for r in records]
    assert [r["prompt"] for r in rows] == [[{"role": "user", "content": r["problem"]}] for r in records]
    tok = tokenizer(texts_of(rows))
    seen = []

    def answer_reward_recorded(completions, solution, **kwargs):
        seen.append(list(solution))
        return answer_reward(completions, solution, **kwargs)

    args = GRPOConfig(output_dir=str(tmp_path), num_generations=2, max_completion_length=8, **common)
    trainer = GRPOTrainer(model=Qwen2ForCausalLM(config(tok)), reward_funcs=[answer_reward_recorded], args=args,
                          train_dataset=Dataset.from_list(rows), processing_class=tok)
    trainer.train()
    assert seen and set(seen[0]) <= {r["solution"] for r in rows}


def test_dpo_trainer_reads_dpo_rows(refined, trl_stack, tmp_path):
    from datasets import Dataset
    from transformers import Qwen2ForCausalLM
    from trl import DPOConfig, DPOTrainer

    tokenizer, config, common = trl_stack
    rows = export("trl-dpo", refined)[:4]
    tok = tokenizer(texts_of(rows))
    trainer = DPOTrainer(model=Qwen2ForCausalLM(config(tok)), ref_model=Qwen2ForCausalLM(config(tok)),
                         args=DPOConfig(output_dir=str(tmp_path), max_length=4096, **common),
                         train_dataset=Dataset.from_list(rows), processing_class=tok)
    example = trainer.train_dataset[0]
    assert tok.decode(example["chosen_ids"]).startswith(rows[0]["chosen"][0]["content"][:40])
    assert tok.decode(example["rejected_ids"]).startswith(rows[0]["rejected"][0]["content"][:40])
    assert trainer.train().global_step == 1


@pytest.mark.parametrize("fmt", ["trl-sft", "thinkprm-sft"])
def test_sft_trainer_reads_sft_rows(fmt, refined, judged, trl_stack, tmp_path):
    from datasets import Dataset
    from transformers import Qwen2ForCausalLM
    from trl import SFTConfig, SFTTrainer

    tokenizer, config, common = trl_stack
    rows = export(fmt, refined if fmt == "trl-sft" else judged)[:4]
    if fmt == "thinkprm-sft":  # SFTTrainer reads the conversation; ThinkPRM's own columns ride along
        rows = [{"messages": r["messages"]} for r in rows]
    tok = tokenizer(texts_of(rows))
    trainer = SFTTrainer(model=Qwen2ForCausalLM(config(tok)), args=SFTConfig(output_dir=str(tmp_path),
                                                                              max_length=4096, **common),
                         train_dataset=Dataset.from_list(rows), processing_class=tok)
    example = trainer.train_dataset[0]
    trained = [t for t, label in zip(example["input_ids"], example["labels"]) if label != -100]
    target = rows[0]["completion"][0]["content"] if fmt == "trl-sft" else rows[0]["messages"][1]["content"]
    assert re.sub(r"\s+", " ", target)[:60] in re.sub(r"\s+", " ", tok.decode(trained))
    assert trainer.train().global_step == 1
