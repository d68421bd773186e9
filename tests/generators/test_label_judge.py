"""The judge's templates and parsers: every parse path, the vote, and the prompts' faithfulness to
ProcessBench's and ThinkPRM's own, on real ProcessBench GSM8K traces."""

import json
import re

import pytest

from helpers import EXAMPLES
from rubricate.formats.mapping import Mapper
from rubricate.generators.label_judge import (ParseError, parse_default, parse_processbench, parse_thinkprm,
                                              template_variables, vote)
from rubricate.prompts import bundled

# QwenLM/ProcessBench code/templates/critique_template.txt @ e802463, as run_eval.py reads it
# (`.read().strip()`, then `str.format`): the reference the bundled template must reproduce.
PROCESSBENCH_TEMPLATE = (
    "The following is a math problem and a solution (split into paragraphs, enclosed with tags and indexed "
    "from 0):\n\n[Math Problem]\n\n{problem}\n\n[Solution]\n\n{tagged_response}\n\nYour task is to review and "
    "critique the solution paragraph by paragraph. Once you identify an error in a paragraph, return the index "
    "of the paragraph where the earliest error occurs. Otherwise, return the index of -1 (which typically "
    "denotes \"not found\").\n\nPlease put your final answer (i.e., the index) in \\boxed{{}}."
)
# mukhal/ThinkPRM utils/helper.py, the instruction its verifiers were trained with.
THINKPRM_TEMPLATE = (
    "You are given a math problem and a proposed step-by-step solution:\n\n[Math Problem]\n\n{problem}\n\n"
    "[Solution]\n\n{solution}\n\nReview and critique each step in the proposed solution to determine whether "
    "each step is correct. If the solution is incomplete, only verify the provided steps."
)


@pytest.fixture(scope="module")
def traces() -> list[dict]:
    mapper = Mapper({}, "processbench")
    return [mapper(json.loads(line)) for line in open(EXAMPLES / "processbench_gsm8k.jsonl", encoding="utf-8")]


def test_processbench_prompt_is_processbench_s_own(traces):
    for record in traces[:20]:
        steps = record["steps"]
        # run_eval.py's prepare_input_boxed, restated
        tagged = ""
        for i, step in enumerate(steps):
            tagged += f"<paragraph_{i}>\n{step}\n</paragraph_{i}>\n\n"
        theirs = PROCESSBENCH_TEMPLATE.format(problem=record["problem"], tagged_response=tagged.strip())
        ours = bundled("label_processbench").render(**template_variables(record, steps))
        assert ours == theirs


def test_thinkprm_prompt_is_thinkprm_s_own(traces):
    record = dict(traces[0], steps=["Step 1: add the numbers.", "Then multiply: 3 * 4 = 12."])
    ours = bundled("label_thinkprm").render(**template_variables(record, record["steps"]))
    solution = "Step 1: add the numbers.\nStep 2: Then multiply: 3 * 4 = 12."  # existing numbers dropped first
    assert ours == THINKPRM_TEMPLATE.format(problem=record["problem"], solution=solution)


# --- processbench -----------------------------------------------------------------------------------

def test_processbench_answers():
    j = parse_processbench("Paragraph 2 miscounts. The earliest error: \\boxed{2}", 5)
    assert (j.first_error_step, j.labels) == (2, [1.0, 1.0, 0.0, None, None])
    j = parse_processbench("All good: \\boxed{ -1 }", 3)
    assert (j.first_error_step, j.labels) == (-1, [1.0, 1.0, 1.0])
    # The last box is the answer, as in ProcessBench's extract_answer.
    assert parse_processbench("\\boxed{0} ... no wait \\boxed{1}", 3).first_error_step == 1


@pytest.mark.parametrize("text, reason", [
    ("no conclusion at all", "no \\boxed{} with a step index found"),
    ("\\boxed{paragraph 2}", "holds 'paragraph 2', not a step index"),
    ("\\boxed{3}", "index 3 is out of range: the solution has 3 steps"),
    ("\\boxed{-2}", "index -2 is out of range"),
])
def test_processbench_parse_errors_say_what_is_wrong(text, reason):
    with pytest.raises(ParseError) as caught:
        parse_processbench(text, 3)
    assert reason in str(caught.value)


# --- thinkprm ---------------------------------------------------------------------------------------

def test_thinkprm_verdicts():
    text = ("Let's verify step by step:\nStep 1: fine \\boxed{correct}\nStep 2: 3 * 4 is not 13 "
            "\\boxed{\\text{incorrect}}\nIs the solution correct? No")
    j = parse_thinkprm(text, 4)
    assert (j.first_error_step, j.labels, j.extra["verdict"]) == (1, [1.0, 0.0, None, None], "no")
    j = parse_thinkprm("\\boxed{correct} \\boxed{correct}\nIs the solution correct? Yes", 2)
    assert (j.first_error_step, j.labels, j.extra["verdict"]) == (-1, [1.0, 1.0], "yes")
    # Verifying on after an error is allowed; the first error is the first incorrect.
    j = parse_thinkprm("\\boxed{incorrect} \\boxed{correct} \\boxed{incorrect}", 3)
    assert (j.first_error_step, j.labels) == (0, [0.0, 1.0, 0.0])
    assert parse_thinkprm("\\boxed{correct}\\boxed{correct}", 2).extra["verdict"] is None


@pytest.mark.parametrize("text, reason", [
    ("Step 1 looks fine. Is the solution correct? Yes", "no step verdicts"),
    ("\\boxed{correct} \\boxed{correct}", "only 2 of 3 steps verified"),
    ("\\boxed{correct} " * 4, "4 step verdicts for a solution of 3 steps"),
])
def test_thinkprm_parse_errors(text, reason):
    with pytest.raises(ParseError) as caught:
        parse_thinkprm(text, 3)
    assert reason in str(caught.value)


# --- default ----------------------------------------------------------------------------------------

def test_default_reads_the_index_and_the_step_lines():
    text = "Step 0: correct\n**Step 1:** incorrect, 5 + 3 is 8\nStep 2: correct\nStep 3 - incorrect\n\\boxed{1}"
    j = parse_default(text, 4)
    assert (j.first_error_step, j.labels) == (1, [1.0, 0.0, 1.0, 0.0])
    assert j.extra["step_verdicts"] == ["correct", "incorrect", "correct", "incorrect"]
    assert j.extra["conflicts"] == []
    # The boxed index is the conclusion; lines that contradict it are listed, not obeyed.
    j = parse_default("Step 0: incorrect\nStep 1: correct\n\\boxed{1}", 3)
    assert (j.first_error_step, j.labels, j.extra["conflicts"]) == (1, [1.0, 0.0, None], [0, 1])
    with pytest.raises(ParseError):
        parse_default("Step 0: correct\nStep 1: incorrect", 2)  # no conclusion


# --- the vote ---------------------------------------------------------------------------------------

def test_vote_takes_the_majority_and_the_first_seen_on_ties():
    js = [parse_processbench(f"\\boxed{{{k}}}", 4) for k in (2, -1, 2, 0)]
    first, labels, agreement = vote(js, 4)
    assert first == 2 and agreement == 0.5
    assert labels == [pytest.approx(3 / 4), pytest.approx(3 / 3), pytest.approx(1 / 3), 1.0]
    tie = [parse_processbench(f"\\boxed{{{k}}}", 4) for k in (1, 3, 3, 1)]
    assert vote(tie, 4)[0] == 1  # Counter.most_common keeps first-seen order among equals


def test_template_variables_number_and_tag_the_steps(traces):
    record = traces[0]
    v = template_variables(record, record["steps"])
    assert v["tagged_response"].count("<paragraph_") == len(record["steps"])
    assert re.findall(r"^Step (\d+): ", v["numbered_steps"], re.M) == [str(i + 1) for i in range(len(record["steps"]))]
    assert v["problem"] == record["problem"] and v["record"] is record
