"""The contamination probe: the prefix split, ROUGE-L and exact match, and a scripted model on the
test server that has "memorised" chosen MATH-500 problems."""

from __future__ import annotations

import json

import pytest

from helpers import through_engine

from rubricate import schemas
from rubricate.formats.mapping import Mapper
from rubricate.generators.contamination import (compare_continuation, completion_budget, lcs_length, probe_record,
                                                rouge_l, rouge_tokens, split_problem)
from rubricate.prompts import bundled

MODEL = "openai/fake-model"
MEMORISED = {0, 3, 7}


def math500(shared_data, n: int) -> list[dict]:
    mapper = Mapper({}, "math")
    lines = (shared_data / "math500.jsonl").read_text().splitlines()[:n]
    return [mapper(json.loads(line), f"math500:{i + 1}") for i, line in enumerate(lines)]


def memorising_model(server, records, memorised=MEMORISED) -> None:
    """Raw prompts that start a memorised problem are continued with its true rest (and then some);
    every other prompt gets a plausible but different continuation. Asked the truncated question, the
    model answers a memorised problem with its reference answer."""
    known = [records[i] for i in sorted(memorised) if i < len(records)]

    def continue_(req: dict) -> str:
        for record in known:
            if record["problem"].startswith(req["text"]):
                return record["problem"][len(req["text"]):] + "\n\nSolution: we begin by"
        return " the value of the expression when x equals seven and y is unknown?"

    def answer(req: dict) -> str:
        for record in known:
            if req["text"].split("\n\nPlease reason")[0] in record["problem"]:
                return f"I recall this one. The answer is $\\boxed{{{record['reference']['answer']}}}$."
        return "The problem seems to be cut off, so I cannot say."

    server.script(lambda req: req["path"] == "/v1/completions", continue_)
    server.script(lambda req: req["path"] == "/v1/chat/completions", answer)


def probe(server, records, **kw) -> list[dict]:
    return through_engine(server, records, lambda r, engine: probe_record(r, engine, template=bundled("contamination_answer"), **{"fraction": 0.6, **kw}),
                          model=MODEL, max_retries=1)


def valid(record: dict) -> dict:
    assert list(schemas.errors(record)) == [], list(schemas.errors(record))
    return record["feedback"]["contamination"]


# -- splitting and comparing -------------------------------------------------------------------------

def test_the_cut_falls_after_a_whole_word():
    text = "Janet's ducks lay 16 eggs per day.  She eats three for breakfast."
    prefix, rest, k, n = split_problem(text, 0.6)
    assert (k, n) == (7, 12) and prefix + rest == text
    assert prefix == "Janet's ducks lay 16 eggs per day." and rest == "  She eats three for breakfast."
    assert split_problem("one two", 0.99)[:2] == ("one", " two")  # at least one word on each side
    assert split_problem("one two", 0.01)[:2] == ("one", " two")
    assert split_problem("single", 0.6) is None and split_problem("   ", 0.6) is None


def test_rouge_l_is_the_lcs_f1():
    ref, cand = "the cat sat on the mat".split(), "the cat on the mat".split()
    assert lcs_length(ref, cand) == lcs_length(cand, ref) == 5
    p, r = 5 / 5, 5 / 6
    assert rouge_l(cand, ref) == pytest.approx(2 * p * r / (p + r))
    assert rouge_l(ref, ref) == 1.0 and rouge_l(["a"], ["b"]) == 0.0 and rouge_l([], ref) == 0.0
    assert lcs_length(list("ABCBDAB"), list("BDCABA")) == 4  # the textbook case


def test_tokens_keep_math_symbols_and_ignore_case():
    assert rouge_tokens("Find $\\frac{1}{2} + X_1$.") == ["find", "$", "\\", "frac", "{", "1", "}", "{", "2", "}",
                                                         "+", "x_1", "$", "."]


def test_exact_match_is_word_for_word_and_ignores_what_follows():
    rest = " $x^2 + 1$ when  x = 3?"
    assert compare_continuation(" $x^2 + 1$ when x = 3?\n\nSolution: ...", rest) == (True, 1.0)
    assert compare_continuation("$x^2 + 1$\nwhen x = 3?", rest)[0] is True  # whitespace is not a word
    exact, score = compare_continuation(" $X^2 + 1$ when x = 3?", rest)
    assert exact is False and score == 1.0  # case counts for exact match, not for ROUGE-L
    exact, score = compare_continuation(" $x^2 + 2$ when x = 4?", rest)
    assert exact is False and 0.7 < score < 1.0
    assert compare_continuation("", rest) == (False, 0.0)


# -- a model that has memorised some problems --------------------------------------------------------

def test_the_probe_finds_exactly_the_memorised_problems(llm_server, shared_data):
    records = math500(shared_data, 10)
    memorising_model(llm_server, records)
    entries = [valid(r) for r in probe(llm_server, records)]
    exact = {i for i, e in enumerate(entries) if e["exact_match"]}
    assert exact == MEMORISED
    for i, (record, entry) in enumerate(zip(records, entries)):
        prefix = record["problem"][:entry["cut"]]
        assert len(prefix.split()) == entry["prefix_words"] == round(0.6 * entry["words"])
        if i in MEMORISED:
            assert entry["rouge_l"] == 1.0 and entry["answer"]["correct"] is True
            assert entry["answer"]["answer"] == record["reference"]["answer"]
        else:
            assert entry["rouge_l"] < 0.5 and entry["answer"]["correct"] is False
            assert entry["answer"]["reason"] == "no final answer found"
    raw = [r for r in llm_server.requests if r["path"] == "/v1/completions"]
    chat = [r for r in llm_server.requests if r["path"] == "/v1/chat/completions"]
    assert len(raw) == len(chat) == 10
    first = next(r for r in raw if records[0]["problem"].startswith(r["text"]))
    rest = records[0]["problem"][entries[0]["cut"]:]
    assert first["json"]["prompt"] == records[0]["problem"][:entries[0]["cut"]]
    assert first["json"]["temperature"] == 0.0 and first["json"]["max_tokens"] == completion_budget(rest)
    assert all(r["json"]["temperature"] == 0.0 for r in chat)
    assert entries[0]["provenance"]["params"]["fraction"] == 0.6


def test_no_answer_and_no_reference_ask_only_for_the_continuation(llm_server, shared_data):
    records = math500(shared_data, 2)
    memorising_model(llm_server, records)
    entries = [valid(r) for r in probe(llm_server, records, ask_answer=False)]
    assert llm_server.count("/v1/chat/completions") == 0 and all(e["answer"] is None for e in entries)
    llm_server.reset()
    memorising_model(llm_server, records)
    bare = [{"id": "b", "problem": records[0]["problem"]}]
    entry = valid(probe(llm_server, bare)[0])
    assert llm_server.count("/v1/chat/completions") == 0
    assert entry["answer"] == {"answer": None, "correct": None, "reference": None, "reason": "no reference answer"}
    assert entry["exact_match"] is True


def test_a_failed_request_keeps_what_came_back(llm_server, shared_data):
    records = math500(shared_data, 1)
    memorising_model(llm_server, records)
    llm_server.fail("503", times=None, match=lambda req: req["path"] == "/v1/chat/completions")
    entry = valid(probe(llm_server, records)[0])
    assert entry["exact_match"] is True and entry["rouge_l"] == 1.0
    assert entry["answer"]["correct"] is None and "answer request failed" in entry["error"]["reason"]
    assert entry["error"]["attempts"] == 2


def test_a_one_word_problem_is_not_probed(llm_server):
    entry = valid(probe(llm_server, [{"id": "w", "problem": "Simplify."}])[0])
    assert llm_server.count() == 0 and entry["exact_match"] is None and "fewer than two words" in entry["reason"]
