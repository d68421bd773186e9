"""The `refine` generator: Critique-GRPO's refinement prompt, n verified rewrites per critiqued
response, and its choice among them; the policy is scripted on the test server."""

from __future__ import annotations

import copy
import json

import pytest

from helpers import EXAMPLES, through_engine
from rubricate import schemas
from rubricate.formats.mapping import Mapper
from rubricate.generators.critique import simple_record
from rubricate.generators.refine import choose, refine_record
from rubricate.prompts import bundled

MODEL = "openai/fake-model"


def critiqued(n: int, kind: str = "ground-truth") -> list[dict]:
    """Real ProcessBench traces with their GSM8K answers, given Critique-GRPO's ground-truth critique."""
    mapper = Mapper({}, "processbench")
    lines = (EXAMPLES / "processbench_gsm8k.jsonl").read_text().splitlines()[:n]
    return [simple_record(mapper(json.loads(line), f"example:{i + 1}"), kind) for i, line in enumerate(lines)]


def policy(server, records, *, samples=1, max_retries=2, **kw) -> list[dict]:
    return through_engine(server, records, lambda r, engine: refine_record(r, engine, template=bundled("refine"), samples=samples, params={}, **kw),
                          model=MODEL, max_retries=max_retries)


def refinement(record: dict) -> dict:
    assert list(schemas.errors(record)) == [], list(schemas.errors(record))
    return record["feedback"]["refinement"]


def sample(correct, reward=None):
    return {"text": "t", "answer": "a", "correct": correct, "reward": reward if reward is not None else
            {True: 1.0, False: 0.0, None: None}[correct]}


@pytest.mark.parametrize("samples,chosen", [
    ([sample(False), sample(True), sample(True)], 1),  # the first correct one
    ([sample(None), sample(False), sample(False)], 1),  # else the highest reward, the first of equals
    ([sample(None), sample(None)], 0),
    ([sample(False)], 0),
    ([], None),
])
def test_choice_is_critique_grpos(samples, chosen):
    assert choose(samples) == chosen


def test_refinements_are_verified_and_the_first_correct_is_chosen(llm_server):
    records = critiqued(6)
    answers = {r["problem"]: str(r["reference"]["answer"]) for r in records}

    def reply(req):
        gold = next(a for p, a in answers.items() if p in req["text"])
        # Sample 0 repeats a wrong answer, samples 1 and 2 get it right.
        return f"Reworking step by step... so the answer is \\boxed{{{gold if req['sample'] else int(gold) + 1}}}."

    llm_server.script(None, reply)
    out = policy(llm_server, copy.deepcopy(records), samples=3)
    assert llm_server.count() == len(records)  # n samples in one request
    for record, source in zip(out, records):
        entry = refinement(record)
        assert [s["correct"] for s in entry["samples"]] == [False, True, True]
        assert [s["reward"] for s in entry["samples"]] == [0.0, 1.0, 1.0]
        assert entry["samples"][1]["answer"] == str(source["reference"]["answer"])
        assert entry["chosen"] == 1 and entry["critique_type"] == "ground-truth"
        assert entry["provenance"]["params"]["samples"] == 3
        assert record["feedback"]["critique"] == source["feedback"]["critique"]  # untouched


def test_the_prompt_is_critique_grpos_refinement_prompt(llm_server):
    record = critiqued(1)[0]
    policy(llm_server, [copy.deepcopy(record)])
    sent = llm_server.requests[0]
    assert sent["system"] == "You are a helpful assistant."
    critique = record["feedback"]["critique"]["text"]
    assert critique.startswith("The generated solution is incorrect, the ground truth is ")
    assert sent["text"] == (
        "Given the following inputs:\n"
        f"        **Question**: {record['problem']}\n"
        f"        **Previous Solution**: {record['response']}\n"
        f"        **Critique**: {critique}\n\n"
        "        Please re-answer by:\n"
        "        - Correcting potential errors identified in the critique, if they exist.\n"
        "        - Providing clear, step-by-step reasoning.\n"
        "        - Formatting the final answer as `\\boxed{answer}`.\n\n"
        "        Ensure the revised solution addresses all issues raised in the critique.")


def test_an_answer_without_a_marker_earns_nothing_unless_fallback(llm_server):
    record = critiqued(1)[0]
    llm_server.script(None, f"I recomputed it and got {record['reference']['answer']}")
    strict = refinement(policy(llm_server, [copy.deepcopy(record)])[0])
    assert strict["samples"][0]["correct"] is None and "no final answer found" in strict["samples"][0]["reason"]
    assert strict["chosen"] == 0
    loose = refinement(policy(llm_server, [copy.deepcopy(record)], fallback=True)[0])
    assert loose["samples"][0]["correct"] is True


def test_records_without_critique_text_pass_through_unasked(llm_server):
    records = critiqued(3)
    del records[0]["feedback"]["critique"]
    records[1]["feedback"]["critique"]["text"] = None
    out = policy(llm_server, copy.deepcopy(records))
    assert [("refinement" in r["feedback"]) for r in out] == [False, False, True]
    assert llm_server.count() == 1


def test_a_failed_request_keeps_the_record_with_an_error(llm_server):
    records = critiqued(3)
    llm_server.fail("503", times=None, match=records[1]["problem"][:40])
    out = policy(llm_server, copy.deepcopy(records), max_retries=1)
    entries = [refinement(r) for r in out]
    assert entries[1]["samples"] == [] and entries[1]["chosen"] is None
    assert "503" in entries[1]["error"]["reason"] and entries[1]["error"]["attempts"] == 2
    assert all("error" not in e and e["chosen"] == 0 for e in (entries[0], entries[2]))
