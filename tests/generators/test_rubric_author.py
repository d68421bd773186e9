"""`rubric author`: a rubric per record from a scripted author on the test server, tidied, validated
against the rubric file schema, repaired once, and usable by `rubric` as it stands."""

from __future__ import annotations

import json

from helpers import through_engine

from rubricate import schemas
from rubricate.formats.mapping import Mapper
from rubricate.generators.rubric import score_static
from rubricate.generators.rubric_author import author_record, read_rubric
from rubricate.prompts import bundled
from rubricate.rubrics import parse_rubric

MODEL = "openai/fake-model"


def gsm8k(shared_data, n: int) -> list[dict]:
    mapper = Mapper({}, "gsm8k")
    lines = (shared_data / "gsm8k_test.jsonl").read_text().splitlines()[:n]
    return [mapper(json.loads(line), f"gsm8k:{i + 1}") for i, line in enumerate(lines)]


def good_items(answer: str, n: int = 8) -> list[dict]:
    items = [{"id": "correct-total", "title": "Correct final answer",
              "description": f"Essential Criteria: The final answer is {answer}.", "weight": 5, "hard": True,
              "check": "answer"},
             {"id": "double-counts", "title": "Double counting",
              "description": "Pitfall Criteria: Counts the eggs she eats as sold.", "weight": -2, "hard": False}]
    for k in range(n - 2):
        items.append({"id": f"step-{k}", "title": f"Step {k}", "description": f"Important Criteria: Step {k} holds.",
                      "weight": 3, "hard": False})
    return items


def author(server, records, **kw) -> list[dict]:
    return through_engine(server, records, lambda r, engine: author_record(r, engine, template=bundled("rubric_author"), repair=bundled("rubric_author_repair"), params={}, **kw),
                          model=MODEL, max_retries=1)


def test_an_authored_rubric_is_valid_and_scores_the_record(llm_server, shared_data):
    records = gsm8k(shared_data, 3)
    answers = {r["problem"][:40]: r["reference"]["answer"] for r in records}
    llm_server.script(lambda req: "Write a rubric" in req["text"],
                      lambda req: json.dumps({"items": good_items(next(a for p, a in answers.items()
                                                                          if p in req["text"]))}))
    out = author(llm_server, records)
    assert llm_server.count() == 3
    prompt = llm_server.requests[0]["text"]
    assert "7 to 20 criteria" in prompt and "Reference answer (correct):" in prompt and "Pitfall" in prompt
    assert '"check": "answer"' in prompt
    for record in out:
        rubric = record["rubric"]
        assert schemas.first_error(rubric, "rubric_file") is None
        assert rubric["provenance"]["generator"] == "rubric_author" and rubric["provenance"]["model"] == MODEL
        assert rubric["name"] == f"authored for {record['id']}" and len(rubric["items"]) == 8
        parsed = parse_rubric(rubric, "record")
        assert [i.kind for i in parsed.items][:2] == ["answer", "llm"]
        # It feeds `rubric` as it stands: the reference solution as the response meets the answer item.
        record["response"] = record["reference"]["solution"]
        entry = score_static(record, None)["feedback"]["rubric"]
        assert entry["items"][0]["met"] is True and entry["gate"] == "accept"
        assert entry["rubric"]["hash"] == parsed.hash


def test_a_messy_answer_is_tidied_before_validation():
    items = good_items("18")
    messy = []
    for k, item in enumerate(items):
        item = dict(item, weight=str(item["weight"]), hard=str(item["hard"]).lower(), category="x")
        if k >= 4:
            item.pop("id")
            item["title"] = "Shows the work"  # same title twice: ids must still differ
        messy.append(item)
    text = "Sure, here is the rubric.\n```json\n" + json.dumps({"items": messy}) + "\n```"
    data, problems = read_rubric(text, has_reference=True)
    assert problems == []
    ids = [i["id"] for i in data["items"]]
    assert ids[4:] == ["shows-the-work", "shows-the-work-2", "shows-the-work-3", "shows-the-work-4"]
    assert data["items"][0]["weight"] == 5 and data["items"][0]["hard"] is True
    assert "category" not in data["items"][0]
    parse_rubric(data, "t")


def test_broken_rubrics_say_what_is_wrong():
    few = read_rubric(json.dumps({"items": good_items("18", n=5)}), has_reference=True)
    assert few[0] is None and "the rubric has 5 criteria; write 7 to 20" in few[1]
    no_pitfall = [dict(i, weight=abs(i["weight"])) for i in good_items("18")]
    assert "no Pitfall criterion" in read_rubric(json.dumps(no_pitfall), has_reference=True)[1][0]
    regex = good_items("18")
    regex[2]["check"] = {"type": "regex", "pattern": "(a+)+$"}
    assert read_rubric(json.dumps({"items": regex}), has_reference=True)[1] == [
        "item 'step-0': check 'regex' is not allowed here (only llm and answer)"]
    assert "needs a reference answer" in read_rubric(json.dumps(good_items("18")), has_reference=False)[1][0]
    missing = good_items("18")
    del missing[3]["description"]
    problems = read_rubric(json.dumps(missing), has_reference=True)[1]
    assert "item 'step-1' (items[3]): description: missing" in problems[0]
    assert read_rubric("I would grade on correctness.", has_reference=True) == (
        None, ['the answer holds no JSON object with "items"'])


def test_one_repair_then_success(llm_server, shared_data):
    record = gsm8k(shared_data, 1)[0]
    llm_server.script("Write a rubric", json.dumps({"items": good_items("18", n=4)}))
    llm_server.script("could not be used", json.dumps({"items": good_items("18", n=9)}))
    out = author(llm_server, [record])[0]
    assert llm_server.count() == 2
    repair = llm_server.requests[1]
    assert "the rubric has 4 criteria; write 7 to 20" in repair["text"]
    assert [m["role"] for m in repair["json"]["messages"]] == ["system", "user", "assistant", "user"]
    assert len(out["rubric"]["items"]) == 9


def test_still_broken_after_the_repair_leaves_an_error_that_scoring_reports(llm_server, shared_data):
    record = gsm8k(shared_data, 1)[0]
    llm_server.script("Write a rubric", json.dumps({"items": good_items("18", n=4)}))
    llm_server.script("could not be used", "Sorry, I cannot write a rubric.")
    out = author(llm_server, [record])[0]
    error = out["rubric"]["error"]
    assert "items" not in out["rubric"] and error["attempts"] == 2 and error["raw"].startswith("Sorry")
    assert 'no JSON object with "items"' in error["reason"] and "4 criteria" in error["reason"]
    out["response"] = "The answer is 18."
    entry = score_static(out, None)["feedback"]["rubric"]
    assert entry["error"]["reason"].startswith("the record's rubric was not written:")


def test_a_failed_request_is_an_error_on_the_record(llm_server, shared_data):
    llm_server.fail("500", times=None)
    out = author(llm_server, gsm8k(shared_data, 1))[0]
    assert "500" in out["rubric"]["error"]["reason"] and out["rubric"]["error"]["attempts"] == 2
