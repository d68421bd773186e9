import json
import random
import re
import time
from pathlib import Path

import pytest

from rubricate.errors import InputError, UsageError
from rubricate.generators.steps import KIND, REQUIRES, STRATEGIES, segment, segment_record

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
BLANK_LINE = re.compile(r"\n[^\S\n]*\n")


def steps(text, strategy="auto"):
    return [text[s:e] for s, e in segment(text, strategy)]


def check_spans(text, spans):
    """The invariants every strategy keeps; returns the spans for chaining."""
    prev = 0
    for s, e in spans:
        assert prev <= s < e <= len(text), (prev, s, e)
        piece = text[s:e]
        assert piece == piece.strip() and piece
        assert text[prev:s].strip() == "", repr(text[prev:s])
        prev = e
    assert text[prev:].strip() == ""
    rebuilt, cur = [], 0
    for s, e in spans:
        rebuilt += [text[cur:s], text[s:e]]
        cur = e
    assert "".join(rebuilt) + text[cur:] == text
    return spans


def test_module_constants():
    assert KIND == "steps"
    assert REQUIRES == ("problem", "response")
    assert STRATEGIES == ("auto", "paragraph", "numbered", "line", "sentence")


def test_unknown_strategy_is_a_usage_error():
    with pytest.raises(UsageError, match="bogus"):
        segment("a\n\nb", "bogus")


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("text", ["", "   ", "\n\n \t\n"])
def test_empty_text_has_no_steps(text, strategy):
    assert segment(text, strategy) == []


# --- paragraph -------------------------------------------------------------------------------

QWEN_TRACE = """## Step-by-step solution

First, we find the cost of the apples: $3 \\times 2.50 = 7.50$.

  Next, the pears cost
\\[
p = 4 \\times 1.25

= 5
\\]
so the total is $12.50$.
\t
$$
\\begin{aligned}
T &= 7.50 + 5 \\\\

  &= 12.50
\\end{aligned}
$$

```python
total = 7.50 + 5

print(total)
```

Therefore, the final answer is $\\boxed{12.50}$.
"""


def test_paragraph_keeps_display_math_and_code_whole():
    got = steps(QWEN_TRACE, "paragraph")
    assert got[0] == "## Step-by-step solution"
    assert got[1].startswith("First, we find") and got[1].endswith("7.50$.")
    assert got[2].startswith("Next, the pears cost\n\\[") and got[2].endswith("so the total is $12.50$.")
    assert got[3].startswith("$$\n\\begin{aligned}") and got[3].endswith("\\end{aligned}\n$$")
    assert got[4] == "```python\ntotal = 7.50 + 5\n\nprint(total)\n```"
    assert got[5] == "Therefore, the final answer is $\\boxed{12.50}$."
    assert len(got) == 6
    check_spans(QWEN_TRACE, segment(QWEN_TRACE, "paragraph"))


def test_paragraph_blank_lines_with_spaces_and_crlf():
    text = "one\r\n\r\ntwo\n   \n\t\nthree  \n\n\n"
    assert steps(text, "paragraph") == ["one", "two", "three"]


def test_math_environment_with_blank_line_is_atomic():
    text = "We solve:\n\\begin{align}\nx &= 1\n\nx + 1 &= 2\n\\end{align}\nDone.\n\nNext."
    assert steps(text, "paragraph") == [text[: text.index("\n\nNext")], "Next."]


def test_unclosed_openers_protect_nothing():
    for opener in ("$$", "\\[", "```", "\\begin{align}"):
        text = f"cost {opener} here\n\nsecond\n\nthird"
        assert steps(text, "paragraph") == [f"cost {opener} here", "second", "third"], opener


def test_escaped_delimiters_open_nothing():
    # `\\[2pt]` is a LaTeX line break, `\$$` an escaped dollar and a dollar.
    text = "a \\\\[2pt] b\n\nc \\$$ d\n\ne \\] f $$"
    assert steps(text, "paragraph") == ["a \\\\[2pt] b", "c \\$$ d", "e \\] f $$"]


def test_indented_fence_inside_a_list_item():
    text = "1. Run:\n    ```\n    x = 1\n\n    y = 2\n    ```\n\nDone."
    assert steps(text, "paragraph") == [text[: text.index("\n\nDone")], "Done."]


def test_tilde_fence_closes_only_with_tildes():
    text = "~~~\na\n\n```\nb\n~~~\n\nafter"
    assert steps(text, "paragraph") == ["~~~\na\n\n```\nb\n~~~", "after"]


# --- numbered --------------------------------------------------------------------------------

def test_numbered_list_with_continuation_lines():
    text = ("To solve this, let's go step by step.\n\n"
            "1. Compute the apples:\n   3 apples cost $6.\n\n   That is $2 each.\n"
            "2) Compute the pears:\n   - 2 pears at $1.50\n   - total $3.00\n"
            "3. Add them: $6 + $3 = $9$.\n\n#### 9")
    got = steps(text, "numbered")
    assert got == ["To solve this, let's go step by step.",
                   "1. Compute the apples:\n   3 apples cost $6.\n\n   That is $2 each.",
                   "2) Compute the pears:\n   - 2 pears at $1.50\n   - total $3.00",
                   "3. Add them: $6 + $3 = $9$.\n\n#### 9"]
    check_spans(text, segment(text, "numbered"))


@pytest.mark.parametrize("fmt", ["Step {}: go", "**Step {}:** go", "### Step {}\ngo", "## Step {}. go",
                                 "step {} - go", "**Step {}: go**", "### {}. Go", "{}. go", "{}) go"])
def test_numbered_marker_styles(fmt):
    text = "Intro line.\n" + "\n".join(fmt.format(i) + f"\nbody {i}" for i in (1, 2, 3))
    got = steps(text, "numbered")
    assert got[0] == "Intro line."
    assert got[1:] == [fmt.format(i) + f"\nbody {i}" for i in (1, 2, 3)]
    assert steps(text) == got  # auto sees the sequence


def test_step_markers_outrank_list_numbers():
    text = ("**Step 1: Prices**\n1. Apples: $2\n2. Pears: $3\n\n"
            "**Step 2: Total**\n1. Sum: $5\n2. Done")
    assert steps(text, "numbered") == ["**Step 1: Prices**\n1. Apples: $2\n2. Pears: $3",
                                       "**Step 2: Total**\n1. Sum: $5\n2. Done"]


def test_header_numbers_outrank_plain_list_numbers():
    text = "### 1. Apples\n1. red\n2. green\n### 2. Pears\n1. ripe"
    assert steps(text, "numbered") == ["### 1. Apples\n1. red\n2. green", "### 2. Pears\n1. ripe"]


def test_nested_lists_stay_in_their_step():
    text = "1. Outer\n   1. inner a\n   2. inner b\n2. Outer two\n    3. deeper"
    assert steps(text, "numbered") == ["1. Outer\n   1. inner a\n   2. inner b",
                                       "2. Outer two\n    3. deeper"]


def test_markers_inside_code_and_math_do_not_count():
    text = "1. Code:\n```\n2. not a step\n```\n$$\n3. x\n$$\n2. Real step"
    assert steps(text, "numbered") == ["1. Code:\n```\n2. not a step\n```\n$$\n3. x\n$$", "2. Real step"]


def test_decimals_and_final_answer_lines_are_not_markers():
    text = "1.5 is half of 3.\n2.5 more.\n#### 18"
    assert steps(text, "numbered") == [text]
    assert steps(text) == ["1.5 is half of 3.", "2.5 more.", "#### 18"]  # auto: lines


# --- line ------------------------------------------------------------------------------------

def test_line_strategy_skips_blank_lines_and_keeps_blocks():
    text = "  a = 1  \n\n\nb = 2\n\\[\nc\n\n= 3\n\\]\n```\nx\n\ny\n```\nend\n"
    assert steps(text, "line") == ["a = 1", "b = 2", "\\[\nc\n\n= 3\n\\]", "```\nx\n\ny\n```", "end"]


def test_line_block_in_the_middle_of_a_line_takes_whole_lines():
    text = "We get $$x\n= 1$$ so\nnext"
    assert steps(text, "line") == ["We get $$x\n= 1$$ so", "next"]


# --- sentence --------------------------------------------------------------------------------

def test_sentence_boundaries_and_their_exceptions():
    text = ("Dr. Smith paid $3.50 for 2.5 kg, i.e. a lot. Then he left! Did he pay? "
            "Yes, e.g. with cash vs. card etc. Finally $x = 5$. \\(a. B\\) is inline. "
            "$$y = 1. Z$$ stays. \"Quoted.\" 42 is a number. lowercase. after")
    assert steps(text, "sentence") == [
        "Dr. Smith paid $3.50 for 2.5 kg, i.e. a lot.",
        "Then he left!",
        "Did he pay?",
        "Yes, e.g. with cash vs. card etc. Finally $x = 5$.",
        "\\(a. B\\) is inline.",
        "$$y = 1. Z$$ stays.",
        "\"Quoted.\"",
        "42 is a number. lowercase. after",
    ]


def test_sentence_currency_is_not_math():
    text = "He has $5. Then he gets $10. So $x$ is 15. Next."
    assert steps(text, "sentence") == ["He has $5.", "Then he gets $10.", "So $x$ is 15.", "Next."]


def test_sentence_splits_at_paragraphs_and_list_items():
    text = "First part, no stop\n\nSecond part. Third.\n- item one\n- item two\n### Header\ntext"
    assert steps(text, "sentence") == ["First part, no stop", "Second part.", "Third.", "- item one",
                                       "- item two", "### Header\ntext"]


def test_sentence_inside_display_math_with_blank_line():
    text = "Look. $$\na. B\n\nc$$ Done. Yes."
    assert steps(text, "sentence") == ["Look.", "$$\na. B\n\nc$$ Done.", "Yes."]


def test_sentence_ellipsis_and_closing_marks():
    text = "Wait... So we retry. (It works.) **Done.** Next"
    assert steps(text, "sentence") == ["Wait...", "So we retry.", "(It works.)", "**Done.**", "Next"]


# --- auto ------------------------------------------------------------------------------------

def test_auto_choices():
    numbered = "Plan:\n1. a\n2. b"
    paragraphs = "First para.\nstill first.\n\nSecond para."
    lines = "x = 1\ny = 2"
    sentences = "One sentence. Two sentences."
    assert steps(numbered) == steps(numbered, "numbered") == ["Plan:", "1. a", "2. b"]
    assert steps(paragraphs) == steps(paragraphs, "paragraph")
    assert steps(paragraphs) == ["First para.\nstill first.", "Second para."]
    assert steps(lines) == steps(lines, "line") == ["x = 1", "y = 2"]
    assert steps(sentences) == steps(sentences, "sentence") == ["One sentence.", "Two sentences."]


def test_auto_needs_markers_in_sequence():
    text = "1. only one marker\n\nthen a paragraph\n\n3. and a skip"
    assert steps(text) == steps(text, "paragraph")
    assert len(steps(text)) == 3
    text2 = "Step 1: a\nStep 3: c\nnotes"
    assert steps(text2) == ["Step 1: a", "Step 3: c", "notes"]  # line, not numbered
    assert steps(text2, "numbered") == ["Step 1: a", "Step 3: c\nnotes"]


def test_auto_single_block_paragraph_falls_back_to_sentences_not_lines():
    text = "$$\na = 1\n\nb = 2\n$$"
    assert steps(text) == [text]


# --- records ---------------------------------------------------------------------------------

def test_segment_record_sets_steps_and_spans():
    record = {"problem": "p", "response": "\n  First.\n\nSecond.  \n"}
    out = segment_record(record)
    assert out is record
    assert record["steps"] == ["First.", "Second."]
    assert record["step_spans"] == [[3, 9], [11, 18]]
    assert [record["response"][s:e] for s, e in record["step_spans"]] == record["steps"]


def test_given_steps_stay_untouched():
    given = ["  a  ", "b\n\nc"]
    record = {"problem": "p", "response": "x\n\ny\n\nz", "steps": given}
    out = segment_record(record, "line")
    assert out["steps"] is given and given == ["  a  ", "b\n\nc"]
    assert "step_spans" not in out


def test_empty_steps_list_is_segmented():
    record = {"problem": "p", "response": "a\n\nb", "steps": []}
    assert segment_record(record)["steps"] == ["a", "b"]


def test_missing_or_empty_response():
    assert segment_record({"problem": "p"}) == {"problem": "p"}
    assert segment_record({"problem": "p", "response": None}) == {"problem": "p", "response": None}
    assert segment_record({"problem": "p", "response": " \n "}) == {
        "problem": "p", "response": " \n ", "steps": [], "step_spans": []}


def test_non_string_response_is_an_input_error():
    with pytest.raises(InputError, match="response"):
        segment_record({"id": "r1", "response": 42})


# --- real data -------------------------------------------------------------------------------

def _data(name):
    path = DATA / name
    if not path.exists():
        pytest.skip(f"{path} not found")
    return path


@pytest.mark.slow
def test_processbench_paragraphs_give_back_the_steps():
    records = json.loads(_data("processbench_gsm8k.json").read_text())
    checked = 0
    for record in records:
        expected = [s.strip() for s in record["steps"] if s.strip()]
        if any(BLANK_LINE.search(s) for s in expected):
            continue
        response = "\n\n".join(record["steps"])
        spans = check_spans(response, segment(response, "paragraph"))
        assert [response[s:e] for s, e in spans] == expected, record["id"]
        checked += 1
    assert checked >= 390


@pytest.mark.slow
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_processbench_reconstruction_every_strategy(strategy):
    records = json.loads(_data("processbench_gsm8k.json").read_text())
    total = 0
    for record in records:
        response = "\n\n".join(record["steps"])
        total += len(check_spans(response, segment(response, strategy)))
    assert total >= len(records)


@pytest.mark.slow
def test_gsm8k_solutions_line_by_line():
    lines = _data("gsm8k_test.jsonl").read_text().splitlines()
    assert len(lines) > 1000
    for line in lines:
        answer = json.loads(line)["answer"]
        spans = check_spans(answer, segment(answer, "line"))
        assert [answer[s:e] for s, e in spans] == [x.strip() for x in answer.split("\n") if x.strip()]
        for strategy in ("auto", "sentence"):
            check_spans(answer, segment(answer, strategy))


# --- properties ------------------------------------------------------------------------------

PIECES = ["word", "Word", "3.5", "$", "$$", "\\[", "\\]", "\\(", "\\)", "```", "~~~", "`", "\\\\",
          "\\$", ". ", "! ", "? ", "e.g. ", "Dr. ", "1. ", "2) ", "Step 3:", "**", "### ", "- ",
          "\\begin{align}", "\\end{align}", " ", "  ", "\t", "\n", "\n\n", "\n \n", "\r\n", "\u00a0",
          "Élan", "é", "x=1", "(", ")", "\""]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_random_texts_keep_the_invariants(strategy):
    rng = random.Random(20240917)
    nonempty = 0
    for _ in range(1500):
        text = "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 60)))
        spans = check_spans(text, segment(text, strategy))
        nonempty += bool(spans)
        if text.strip():
            assert spans, repr(text)  # any non-whitespace text is covered by some step
    assert nonempty > 1000


def test_finer_strategies_never_cross_paragraphs():
    rng = random.Random(7)
    for _ in range(500):
        text = "".join(rng.choice(PIECES) for _ in range(rng.randint(1, 60)))
        paragraphs = segment(text, "paragraph")
        for strategy in ("line", "sentence"):
            for s, e in segment(text, strategy):
                assert any(ps <= s and e <= pe for ps, pe in paragraphs), (strategy, repr(text))


def test_unclosed_openers_stay_linear():
    # 20,000 openers with no closer in one paragraph: this takes about 0.1 s, and over 30 s when
    # every opener rescans the rest of the text.
    chunk = "``` \\[ a \\( b c \\begin{align} d $e  f. G\n"
    text = "$$ " + chunk * 4000
    one_line = "x ``` $a \\(b " * 20000  # fence-like runs mid-line must not rescan their line
    start = time.perf_counter()
    spans = {strategy: segment(text, strategy) for strategy in ("paragraph", "line", "sentence", "numbered")}
    spans_one_line = segment(one_line, "sentence")
    assert time.perf_counter() - start < 3
    assert len(spans["line"]) == 4000 and len(spans["paragraph"]) == 1
    assert spans_one_line == [(0, len(one_line.rstrip()))]
    for found in spans.values():
        check_spans(text, found)


def test_triple_backticks_mid_line_or_with_backtick_info_are_not_fences():
    text = "run ```x``` now\n\nand ``` here\n\nend ```"
    assert steps(text, "paragraph") == ["run ```x``` now", "and ``` here", "end ```"]
    text = "```a``` $$x\n\ny$$\n\nz"
    assert steps(text, "paragraph") == ["```a``` $$x\n\ny$$", "z"]
