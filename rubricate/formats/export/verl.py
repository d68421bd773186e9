"""verl's RL parquet rows, and Critique-GRPO's (a fork of verl that adds an expert `target`).

verl (volcengine/verl, docs/preparation/prepare_data.rst and examples/data_preprocess/gsm8k.py,
math_dataset.py): five fields per row, `data_source` (which picks the reward function in
verl.utils.reward_score.default_compute_score), `prompt` (chat messages for the tokenizer's chat
template), `ability`, `reward_model` {`style`: "rule", `ground_truth`} and `extra_info` {`split`,
`index`, ...}. The question is followed by the instruction of its data source's preprocessing script
after a space, and GSM8K's ground truth is the number after "####" without commas (the gsm8k preset
already reads it so).

Critique-GRPO (zhangxy-2019/critique-GRPO @ e8f03a2): rows as its released
openr1_math_4k_train_qwenformat/test.parquet holds them (read with pyarrow): `prompt` = a system turn
"You are a helpful assistant." and a user turn ending "\\nPlease reason step by step, and put your final
answer within \\boxed{}.", `ability` "math", `reward_model` {`ground_truth`, `style`: "rule"},
`extra_info` {`index`, `split`}. Training rows add what its code reads: `target` = [{role: assistant,
content: expert solution}] (verl/verl/critique_grpo/rl_dataset_with_critique.py reads
`target[0]["content"]`; critique_vllm_rollout_spmd.py reads it for every training row, so a row without
one cannot train) and `reward_model.question` (the raw problem its critique prompts quote). An offline
critique and chosen refinement, when the record has them, ride in `extra_info` (verl hands
extra_info to reward functions; Critique-GRPO ignores keys it does not know).

`extra_info.split` and `extra_info.index` are filled when the rows are split (see export/splits.py).
"""

from __future__ import annotations

from rubricate.formats.export.common import (MATH_SOURCE, VERL_INSTRUCTIONS, ExportOptions, answer, data_source,
                                             solution, user_turn)

CRITIQUE_GRPO_SYSTEM = "You are a helpful assistant."
CRITIQUE_GRPO_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."


def verl(record: dict, opts: ExportOptions) -> list[dict]:
    truth = answer(record)
    source = data_source(record, opts.data_source)
    instruction = opts.instruction if opts.instruction is not None else \
        VERL_INSTRUCTIONS.get(source, VERL_INSTRUCTIONS[MATH_SOURCE])
    return [{
        "data_source": source,
        "prompt": user_turn(record, instruction, opts.system),
        "ability": "math",
        "reward_model": {"style": "rule", "ground_truth": truth},
        "extra_info": {"split": None, "index": None, "id": record.get("id"), "question": record["problem"]},
    }]


def critique_grpo(record: dict, opts: ExportOptions) -> list[dict]:
    truth = answer(record)
    target = solution(record)
    system = CRITIQUE_GRPO_SYSTEM if opts.system is None else opts.system
    instruction = CRITIQUE_GRPO_INSTRUCTION if opts.instruction is None else opts.instruction
    extra = {"index": None, "split": None, "id": record.get("id")}
    extra.update(_offline_feedback(record))
    return [{
        "data_source": data_source(record, opts.data_source),
        "prompt": user_turn(record, instruction, system, sep="\n"),
        "ability": "math",
        "reward_model": {"ground_truth": truth, "style": "rule", "question": record["problem"]},
        "extra_info": extra,
        "target": [{"role": "assistant", "content": target}],
    }]


def _offline_feedback(record: dict) -> dict:
    feedback = record.get("feedback") if isinstance(record.get("feedback"), dict) else {}
    out: dict = {}
    critique = feedback.get("critique")
    if isinstance(critique, dict) and isinstance(critique.get("text"), str) and critique["text"].strip():
        out.update({"response": record.get("response"), "critique": critique["text"],
                    "critique_type": critique.get("type"), "critique_verdict": critique.get("verdict")})
    refinement = feedback.get("refinement")
    if isinstance(refinement, dict):
        samples = refinement.get("samples") if isinstance(refinement.get("samples"), list) else []
        chosen = refinement.get("chosen")
        if isinstance(chosen, int) and 0 <= chosen < len(samples) and isinstance(samples[chosen].get("text"), str):
            out.update({"refinement": samples[chosen]["text"], "refinement_correct": samples[chosen].get("correct")})
    return out
