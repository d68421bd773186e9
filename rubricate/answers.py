"""Final answers: find the one a response commits to, and decide whether it matches the reference.

Extraction is plain regular expressions, tried from the most explicit marker (`\\boxed{}`) to the
least (the last number in the text). Comparison goes through math-verify, which is imported only
when a comparison is made: it pulls in sympy, and that costs most of a second at startup.
"""

from __future__ import annotations

import math
import re
import signal
import threading
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from decimal import Decimal
from typing import Iterator

MAX_CHARS = 1000  # longer "answers" are runaway generations; parsing them can take minutes


@dataclass(frozen=True)
class Extracted:
    text: str
    method: str  # boxed, answer_tag, hash, final_answer, answer_is, choice, last_number


@dataclass(frozen=True)
class Comparison:
    correct: bool | None  # None: could not be decided, see reason
    method: str | None  # math_verify, choice, exact
    reason: str | None


# ---------------------------------------------------------------------------------------------
# Extraction

# GSM8K calculator annotations `<<48/2=24>>`: their results look like answers but never are.
_ANNOTATION = re.compile(r"<<[^<>\n]*>>")
_BOX = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.S | re.I)
_HASH = re.compile(r"^[ \t]*####[ \t]*(.+?)[ \t]*$", re.M)
# "Final Answer: X", "**Final Answer:** X", "## Final Answer\nX", and a line or sentence starting
# "Answer: X"; "the final answer is X" is left to _ANSWER_IS.
_FINAL = re.compile(r"\bfinal\s+answer\b[ \t*#]*(?:[:：]|\n)|(?:^|[.!?][ \t]+)[ \t*#>-]*answer[ \t*]*[:：]",
                    re.I | re.M)
_ANSWER_IS = re.compile(r"\banswer\s+is\b[ \t*]*[:：]?", re.I)
# Where a sentence stating an answer ends; a decimal point is not followed by a space.
_CLAUSE_END = re.compile(r"\.(?:\s|$)|,?\s+(?:because|since|which|so that)\b|,\s+so\b", re.I)
# "option (B)", "the correct choice is B.": a bare letter must end its clause ("option I tried").
_CHOICE_CUE = re.compile(r"\b(?:option|choice)\s*(?:is\s*)?[:：]?\s*(?:\((?-i:([A-J]))\)"
                         r"|\**(?-i:([A-J]))\**(?=[.,;:!?]|[ \t]*$))", re.I | re.M)
_CHOICE = re.compile(r"^\(?([A-J])\)?\.?$|^\(([A-J])\)\s")  # "B", "(B)", "B." or "(B) 42"
# A minus sign only where it cannot be a dash or a subtraction ("pages 10-20", "x-3").
_NUMBER = re.compile(r"(?:(?<![\w)])-)?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?")
_DELIMITED = re.compile(r"^(?:\$\$(.*)\$\$|\$(.*)\$|\\\[(.*)\\\]|\\\((.*)\\\))$", re.S)
_WRAPPER = re.compile(r"^\\(?:text|textbf|mathrm|mathbf|mbox)\s*\{")
_THOUSANDS = re.compile(r"^[-+]?\d{1,3}(?:(?:,|\{,\}|\\,)\d{3})+(?:\.\d+)?$")


def _braced(text: str, start: int) -> int | None:
    """Index just past the `}` closing the `{` at `start`; escaped `\\{ \\}` do not count."""
    depth, i = 0, start
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return None


def last_boxed(text: str) -> str | None:
    """Content of the last complete `\\boxed{...}` (or `\\fbox{...}`, or `\\boxed 5`) in `text`."""
    found, pos = None, 0
    while (m := _BOX.search(text, pos)) is not None:
        i = m.end()
        while i < len(text) and text[i] in " \t":
            i += 1
        if text.startswith("{", i):
            end = _braced(text, i)
            if end is None:  # cut off mid-answer: an earlier complete box is the better guess
                pos = m.end()
                continue
            found, pos = text[i + 1:end - 1], end  # skipping past the box ignores boxes inside it
        elif i > m.end():
            token = re.match(r"[^\s$]+", text[i:])
            found, pos = (token.group(0) if token else found), m.end()
        else:
            pos = m.end()
    return found


def _unwrap(s: str) -> str:
    """Strip the dressing around an answer: math delimiters, bold, `\\text{}`, currency, periods."""
    prev = None
    while s != prev:
        prev = s
        s = s.strip().strip("*").strip()
        s = re.sub(r"[.,;]+$", "", s)
        s = s.removeprefix("=").strip()
        if m := _DELIMITED.match(s):
            s = next(g for g in m.groups() if g is not None)
        if m := _WRAPPER.match(s):
            if _braced(s, m.end() - 1) == len(s):
                s = s[m.end():-1]
        # A dollar amount, not a math delimiter; "\\15" is "\\$15" that lost its "$" (Llama-3).
        if re.match(r"^(?:\\?\$\s*-?|\\)\d", s):
            s = s.lstrip("\\$").strip()
    return s


def _choice_letter(s: str, *, bare: bool = False) -> str | None:
    """The letter of a multiple-choice answer; `bare`: only a letter alone, not "(B) 42"."""
    m = _CHOICE.match(_unwrap(s))
    return m.group(1) if bare and m else (m.group(1) or m.group(2)) if m else None


def _first_clause(payload: str) -> str:
    """What follows an answer marker, up to the end of its math span or sentence."""
    lines = [ln for ln in payload.lstrip(" \t:*").split("\n") if ln.strip()]
    if not lines:
        return ""
    line = lines[0].strip()
    if line in ("$$", "\\["):  # display math on the lines below
        closer = "$$" if line == "$$" else "\\]"
        return "\n".join(lines[1:]).split(closer)[0]
    for opener, closer in (("$$", "$$"), ("\\[", "\\]"), ("\\(", "\\)"), ("$", "$")):
        if line.startswith(opener) and (end := line.find(closer, len(opener))) > 0:
            return line[:end + len(closer)]
    return _CLAUSE_END.split(line, maxsplit=1)[0]


def _plain_number(s: str) -> str:
    """An answer written as prose ("John has 180 minutes to nap") reduced to its one number."""
    if re.search(r"[\\^{}/=]", s) or not re.search(r"(?<![\\A-Za-z])[A-Za-z]{4,}", s):
        return s
    numbers = _NUMBER.findall(s)
    return numbers[0] if len(numbers) == 1 else s


def _clean(raw: str, method: str) -> Extracted | None:
    text = _unwrap(raw)
    if not text:
        return None
    letter = _choice_letter(text)
    if letter:  # a letter found by a textual cue is a choice; one in a box or tag keeps its method
        return Extracted(letter, "choice" if method in ("final_answer", "answer_is") else method)
    if method in ("final_answer", "answer_is", "hash"):
        text = _plain_number(text)
    return Extracted(text, method)


def _marked(text: str) -> Extracted | None:
    """The answer behind the most explicit marker in `text`, or None when there is no marker."""
    boxed = last_boxed(text)
    if boxed is not None and (found := _clean(boxed, "boxed")):
        return found
    if tags := _ANSWER_TAG.findall(text):
        inner = _marked(tags[-1])  # "<answer>The answer is 5.</answer>" is common enough
        if found := _clean(inner.text if inner else tags[-1], "answer_tag"):
            return found
    if hashes := _HASH.findall(text):
        if found := _clean(hashes[-1], "hash"):
            return found
    if finals := list(_FINAL.finditer(text)):
        payload = text[finals[-1].end():]
        inner = list(_ANSWER_IS.finditer(payload.split("\n\n")[0]))  # Minerva: "Final Answer: The
        if inner:  # final answer is $X$. I hope it is correct."
            payload = payload[inner[-1].end():]
        if found := _clean(_first_clause(payload), "final_answer"):
            return found
    if said := list(_ANSWER_IS.finditer(text)):
        if found := _clean(_first_clause(text[said[-1].end():]), "answer_is"):
            return found
    if cues := _CHOICE_CUE.findall(text):
        return Extracted("".join(cues[-1]), "choice")
    # A response ending on a line "(B)"; not "(C) 7", which may be the last of a list of options.
    if letter := _choice_letter(text.strip().rsplit("\n", 1)[-1], bare=True):
        return Extracted(letter, "choice")
    return None


def _last_number(text: str) -> Extracted | None:
    numbers = _NUMBER.findall(text)
    return Extracted(numbers[-1].replace(",", ""), "last_number") if numbers else None


def extract_answer(text: str, *, fallback: bool = True) -> Extracted | None:
    """The final answer in a response, or None. `fallback=False`: no last-number guess."""
    if not isinstance(text, str) or not text.strip():
        return None
    text = _ANNOTATION.sub("", text)
    # A reasoning model's answer follows its thinking; a marker inside the thinking is a draft,
    # but still a better guess than a stray number after it.
    whole = re.sub(r"</?think>", "\n", text)  # the tags end sentences, never answers
    segments = [whole]
    if "</think>" in text:
        after = text.rsplit("</think>", 1)[1]
        segments = [after, whole] if after.strip() else [whole]
    for segment in segments:
        if found := _marked(segment):
            return found
    if fallback:
        for segment in segments:
            if found := _last_number(segment):
                return found
    return None


# ---------------------------------------------------------------------------------------------
# Comparison

def answer_text(value: object) -> str | None:
    """An answer as text (0.5 -> "0.5", 18.0 -> "18"); None for what cannot be one (bools, NaN)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return str(int(value)) if value.is_integer() else format(Decimal(repr(value)), "f")
    return str(value)


def _normalise(s: str) -> str:
    """The text both sides are reduced to before math-verify, and compared as when it cannot parse."""
    s = _unwrap(s)
    if _THOUSANDS.match(s):  # a single number only: "(1,2)" and "1,2,3" are tuples and sets
        s = re.sub(r"\{,\}|\\,|,", "", s)
    return re.sub(r"(?<!\\)%", r"\\%", s)


def _exact_key(s: str) -> str:
    s = re.sub(r"\\[dt]frac", r"\\frac", s)
    s = re.sub(r"\\left|\\right|\\[,!;: ]|\s+", "", s)
    s = re.sub(r"\\text\{([^{}]*)\}", r"\1", s)
    return s if "\\" in s else s.lower()  # "Monday" is "monday", but "\Delta" is not "\delta"


def _too_costly(s: str) -> bool:
    """Without a timeout, refuse what sympy may never finish: towers of powers, huge exponents."""
    return bool(re.search(r"\^\s*\{[^{}]*\^|\^\s*\{?\s*\d{4,}|\d{3,}\s*!", s))


@contextmanager
def _outer_alarm_kept() -> Iterator[None]:
    """math-verify's signal.alarm(0) cancels any timer already set (pytest-timeout, a caller's);
    set it again afterwards with whatever time it had left."""
    remaining, _ = signal.getitimer(signal.ITIMER_REAL)
    started = time.monotonic()
    try:
        yield
    finally:
        if remaining > 0:
            signal.setitimer(signal.ITIMER_REAL, max(remaining - (time.monotonic() - started), 1e-3))


def compare(predicted: str, reference: str | int | float, *, timeout: float = 3.0) -> Comparison:
    """Whether `predicted` states the same answer as `reference`. Never raises on bad data."""
    ref = answer_text(reference)
    if ref is None or not ref.strip():
        return Comparison(None, None, "no usable reference answer")
    predicted = answer_text(predicted)
    if predicted is None or not predicted.strip():
        return Comparison(None, None, "no predicted answer")
    if len(predicted) > MAX_CHARS or len(ref) > MAX_CHARS:
        return Comparison(None, None, f"too long to compare (over {MAX_CHARS} characters)")
    if (letter := _choice_letter(ref)) is not None:
        got = _choice_letter(predicted)
        reason = None if got else "reference is a choice letter; the answer is not one"
        return Comparison(got == letter, "choice", reason)

    pred, gold = _normalise(predicted), _normalise(ref)
    if _exact_key(pred) == _exact_key(gold):  # also spares sympy the easy cases
        return Comparison(True, "exact", None)
    return _by_math_verify(pred, gold, timeout)


def _by_math_verify(pred: str, gold: str, timeout: float) -> Comparison:
    """Both sides (already normalised) through sympy, with no shortcut for identical text."""
    # signal.alarm only works in the main thread; elsewhere math-verify runs without a timeout.
    in_main = threading.current_thread() is threading.main_thread()
    seconds = max(1, math.ceil(timeout)) if in_main else None
    if seconds is None and (_too_costly(pred) or _too_costly(gold)):
        return Comparison(None, None, "too costly to compare without a timeout (not in the main thread)")

    from math_verify import parse, verify
    from math_verify.errors import TimeoutException
    from sympy import Basic, MatrixBase

    try:
        with _outer_alarm_kept() if in_main else nullcontext():
            gold_parsed = parse("\\boxed{" + gold + "}", parsing_timeout=seconds, raise_on_error=True)
            pred_parsed = parse("\\boxed{" + pred + "}", parsing_timeout=seconds, raise_on_error=True)
            parsed = [any(isinstance(x, (Basic, MatrixBase)) for x in side)
                      for side in (gold_parsed, pred_parsed)]
            if not all(parsed):
                side = "reference" if not parsed[0] else "answer"
                return Comparison(False, "exact", f"math-verify could not parse the {side}; compared as text")
            same = verify(gold_parsed, pred_parsed, timeout_seconds=seconds, raise_on_error=True)
    except TimeoutException:
        return Comparison(None, "math_verify", f"timeout after {seconds}s in math-verify")
    except Exception as err:  # sympy raises nearly anything on odd input
        return Comparison(None, "math_verify", f"math-verify failed: {type(err).__name__}")
    return Comparison(bool(same), "math_verify", None)
