"""The `steps` generator: a reasoning trace cut into steps, as character spans of the response.

Every strategy returns `[start, end)` spans that are stripped, non-empty, in order and disjoint, and
what lies between them is only separators, so the steps put back together with the text between
them give back the response byte for byte (`record["step_spans"]` keeps that alignment).

Fenced code (```` ``` ````/`~~~`) and display math (`$$...$$`, `\\[...\\]`, `\\begin{align}` and
the other math environments) are atomic: no strategy cuts inside them, so a blank line inside a
`$$` block does not end a paragraph. An opener without its closer protects nothing (a stray `$$`
or a trace truncated inside a code block must not swallow the rest of the response).

Every scan is a left-to-right pass with precompiled patterns; searches for a closer remember where
they failed, so unclosed openers cannot make a long trace quadratic.
"""

from __future__ import annotations

import re

from rubricate.errors import InputError, UsageError

KIND = "steps"
REQUIRES = ("problem", "response")
STRATEGIES = ("auto", "paragraph", "numbered", "line", "sentence")

Span = tuple[int, int]

_MATH_ENVS = (r"equation|align|alignat|gather|multline|flalign|eqnarray|displaymath|math|split"
              r"|aligned|alignedat|gathered|cases|array|[pbvBV]?matrix|smallmatrix")
# Openers of atomic regions. `\\` and `\$` are matched (and skipped) so `\\[2pt]` and `\$$` open nothing.
# The lookahead on the first character lets the regex engine skip plain text at C speed (2-3x faster
# than starting with `^` for fences); that a fence starts its line is checked after the match.
_BLOCK_OPEN = (r"(?P<fence>`{3,}|~{3,})"
               r"|\\[\\$]"
               r"|(?P<dd>\$\$)"
               r"|(?P<brk>\\\[)"
               rf"|\\begin\{{(?P<env>(?:{_MATH_ENVS})\*?)\}}")
_BLOCK = re.compile(rf"(?=[`~$\\])(?:{_BLOCK_OPEN})")
# Sentence splitting also protects inline math and inline code.
_INLINE = re.compile(rf"(?=[`~$\\])(?:{_BLOCK_OPEN}|(?P<par>\\\()|(?P<dollar>\$)|(?P<tick>`))")
_FENCE_CLOSE = re.compile(r"^[^\S\n]*(`{3,}|~{3,})[^\S\n]*$", re.M)
_DD_CLOSE = re.compile(r"(?<!\\)(?:\\\\)*\$\$")
_BRK_CLOSE = re.compile(r"(?<!\\)(?:\\\\)*\\\]")
_PAR_CLOSE = re.compile(r"(?<!\\)(?:\\\\)*\\\)")
_DOLLAR_CLOSE = re.compile(r"(?<!\\)(?:\\\\)*\$|\n[^\S\n]*\n")  # the next `$`, or a blank line first
_TICK_SPAN = re.compile(r"`[^`\n]+`")

_BLANK_RUN = re.compile(r"\n(?:[^\S\n]*\n)+")
_NEWLINE_RUN = re.compile(r"\n\s*")
# A sentence ends at . ! ? (and closing quotes, brackets, emphasis) before whitespace and a capital,
# digit, math, quote or bracket; lowercase after the space means it did not end (decimals have no space).
_SENTENCE_END = re.compile(r"[.!?]+[)\]\"'\u201d\u2019*_]*(\s+)"
                           r"(?=[A-Z0-9$\\\"'\u201c\u2018(\[*#]|[^\x00-\x7f])")
_ABBREVIATION = re.compile(
    r"(?<![\w.])(?:e\.g|i\.e|etc|vs|cf|viz|approx|resp|al|dr|mr|mrs|ms|prof|sr|jr|st|mt|fig|figs"
    r"|eq|eqs|eqn|inc|ltd|[a-z](?:\.[a-z])+)\Z", re.I)
# A list item or header on its own line starts a new sentence even without a full stop before it.
_ITEM_BREAK = re.compile(r"\n(?=[^\S\n]*(?:[-*+\u2022]|\d{1,3}[.)]|#{1,6})[^\S\n])")

# A step marker at the start of a line, after optional indentation, `#` header and `**` emphasis.
_MARKER = re.compile(
    r"^(?P<indent>[^\S\n]*)(?P<deco>(?:#{1,6}[^\S\n]*)?(?:\*\*|__)?)[^\S\n]*"
    r"(?:(?i:step)[^\S\n]*(?P<step>\d{1,4})(?![\d.]\d)|(?P<num>\d{1,4})[.)](?=\s|\*|$))",
    re.M)


class _Closers:
    """Searches for closing delimiters that remember their misses.

    A miss from `pos` means no closer at or after `pos`, so every later opener of the same kind
    misses at once: unclosed openers cost one pass over the text in all, not one pass each.
    """

    def __init__(self, text: str, end: int):
        self.text, self.end = text, end
        self.miss: dict[object, int] = {}

    def search(self, key: object, pattern: re.Pattern, pos: int) -> re.Match | None:
        if self.miss.get(key, self.end + 1) <= pos:
            return None
        m = pattern.search(self.text, pos, self.end)
        if m is None:
            self.miss[key] = pos
        return m

    def fence(self, char: str, length: int, pos: int) -> int | None:
        key = ("fence", char, length)
        if self.miss.get(key, self.end + 1) <= pos:
            return None
        for m in _FENCE_CLOSE.finditer(self.text, pos, self.end):
            run = m.group(1)
            if run[0] == char and len(run) >= length:
                return m.end()
        self.miss[key] = pos
        return None


def _regions(text: str, start: int, end: int, inline: bool = False) -> list[Span]:
    """Sorted, disjoint spans of `text[start:end]` that no strategy may cut inside."""
    opener = _INLINE if inline else _BLOCK
    closers = _Closers(text, end)
    regions: list[Span] = []
    pos = start
    while True:
        m = opener.search(text, pos, end)
        if m is None:
            return regions
        pos, close = m.end(), None
        kind = m.lastgroup
        if kind == "fence":
            fence = m.group("fence")
            at = m.start() - 1
            while at >= start and text[at] != "\n" and text[at].isspace():
                at -= 1
            if at >= start and text[at] != "\n":  # not at the start of its line
                continue
            line_end = text.find("\n", pos, end)
            if line_end < 0:
                continue
            if fence[0] == "`" and "`" in text[pos:line_end]:  # inline code, not a fence
                continue
            close = closers.fence(fence[0], len(fence), line_end + 1)
            if close is None:
                continue
            regions.append((m.start("fence"), close))
            pos = close
            continue
        if kind == "dd":
            c = closers.search("dd", _DD_CLOSE, pos)
            close = c and c.end()
        elif kind == "brk":
            c = closers.search("brk", _BRK_CLOSE, pos)
            close = c and c.end()
        elif kind == "env":
            name = m.group("env")
            if closers.miss.get(name, end + 1) > pos:
                tag = "\\end{" + name + "}"
                at = text.find(tag, pos, end)
                if at < 0:
                    closers.miss[name] = pos
                else:
                    close = at + len(tag)
        elif kind == "par":
            c = closers.search("par", _PAR_CLOSE, pos)
            close = c and c.end()
        elif kind == "dollar":
            # Pandoc's rule, so that currency stays text: `$` opens only before a non-space and
            # closes at the very next `$`, which must follow a non-space and not precede a digit.
            if pos < end and not text[pos].isspace():
                c = _DOLLAR_CLOSE.search(text, pos, end)
                if c is not None and text[c.end() - 1] == "$":
                    at = c.end() - 1
                    if not text[at - 1].isspace() and not (at + 1 < end and text[at + 1].isdigit()):
                        close = at + 1
        elif kind == "tick":
            c = _TICK_SPAN.match(text, m.start(), end)
            close = c and c.end()
        if close:
            regions.append((m.start(), close))
            pos = close


def _outside(cuts, regions: list[Span]):
    """The cuts (tuples sorted by their first item, a position) whose position lies in no region."""
    k, n = 0, len(regions)
    for cut in cuts:
        at = cut[0]
        while k < n and regions[k][1] <= at:
            k += 1
        if k < n and regions[k][0] <= at:
            continue
        yield cut


def _strip(text: str, s: int, e: int) -> Span | None:
    chunk = text[s:e]
    head = chunk.lstrip()
    if not head:
        return None
    start = s + len(chunk) - len(head)
    return start, start + len(head.rstrip())


def _chunks(text: str, start: int, end: int, cuts) -> list[Span]:
    """The stripped, non-empty pieces of `text[start:end]` between the cuts (sorted by start)."""
    spans: list[Span] = []
    cur = start
    for s, e in cuts:
        if s >= cur:
            piece = _strip(text, cur, s)
            if piece:
                spans.append(piece)
        cur = max(cur, e)
    piece = _strip(text, cur, end)
    if piece:
        spans.append(piece)
    return spans


def _matches(pattern: re.Pattern, text: str, start: int, end: int):
    return (m.span() for m in pattern.finditer(text, start, end))


def _paragraphs(text: str, blocks: list[Span]) -> list[Span]:
    return _chunks(text, 0, len(text), _outside(_matches(_BLANK_RUN, text, 0, len(text)), blocks))


def _lines(text: str, blocks: list[Span]) -> list[Span]:
    return _chunks(text, 0, len(text), _outside(_matches(_NEWLINE_RUN, text, 0, len(text)), blocks))


def _sentence_cuts(text: str, start: int, end: int):
    """`(punctuation, separator start, separator end)` of each sentence end in `text[start:end]`."""
    for m in _SENTENCE_END.finditer(text, start, end):
        p, nxt = m.start(), m.end()
        if nxt < end and text[nxt] > "\x7f" and text[nxt].islower():
            continue
        if text[p] == "." and text[p + 1] != "." and _ABBREVIATION.search(text, max(start, p - 12), p):
            continue
        yield p, m.start(1), m.end(1)


def _sentences(text: str, blocks: list[Span]) -> list[Span]:
    spans: list[Span] = []
    for ps, pe in _paragraphs(text, blocks):
        regions = _regions(text, ps, pe, inline=True)
        items = ((s, s, e) for s, e in _matches(_ITEM_BREAK, text, ps, pe))
        # Checked at the punctuation, so "$x = 5.$ Then" stays whole inside its math.
        cuts = sorted([*_sentence_cuts(text, ps, pe), *items])
        spans.extend(_chunks(text, ps, pe, ((s, e) for _, s, e in _outside(cuts, regions))))
    return spans


def _markers(text: str, blocks: list[Span]) -> list[tuple[int, int]]:
    """`(line_start, number)` of the step markers that define the steps, outside code and math.

    Three families, strongest first: `Step N`, numbers after a `#` header or `**`, and plain list
    numbers at the shallowest indentation (so nested sub-lists stay inside their step). The first
    family with two consecutive numbers in sequence wins; failing that, the first non-empty one.
    """
    families: tuple[list, list, list] = ([], [], [])
    plain_indent = None
    for m in _MARKER.finditer(text):  # in text order, so each family is sorted
        s = m.start()
        if m.group("step"):
            families[0].append((s, int(m.group("step")), 0))
        elif m.group("deco"):
            families[1].append((s, int(m.group("num")), 0))
        else:
            indent = len(m.group("indent").expandtabs(4))
            families[2].append((s, int(m.group("num")), indent))
            plain_indent = indent if plain_indent is None else min(plain_indent, indent)
    chosen: list[tuple[int, int]] = []
    for i, family in enumerate(families):
        marks = [(s, n) for s, n, indent in _outside(family, blocks) if i < 2 or indent == plain_indent]
        if _in_sequence(marks):
            return marks
        if marks and not chosen:
            chosen = marks
    return chosen


def _in_sequence(marks: list[tuple[int, int]]) -> bool:
    return any(b[1] == a[1] + 1 for a, b in zip(marks, marks[1:]))


def _numbered(text: str, marks: list[tuple[int, int]]) -> list[Span]:
    return _chunks(text, 0, len(text), ((s, s) for s, _ in marks))


def segment(text: str, strategy: str = "auto") -> list[Span]:
    """The `[start, end)` spans of the steps of `text`.

    Strategies:
    - `paragraph`: split at blank lines (lines of only whitespace).
    - `numbered`: a step starts at each line that begins with a marker (`1.`, `1)`, `Step 1:`,
      `**Step 1:**`, `### Step 1`, `### 2. Title`); lines after it belong to it, and text before the
      first marker is a step of its own.
    - `line`: each non-empty line.
    - `sentence`: after `.`, `!` or `?` followed by whitespace and a capital, digit, `$`, `\\`, quote
      or bracket, unless inside inline or display math or code, or after an abbreviation (e.g.,
      i.e., Dr., vs., etc.); blank lines and new list items or headers also end a sentence.
    - `auto`: `numbered` if there are two step markers in sequence (`1.` then `2.`, `Step 1` then
      `Step 2`); else `paragraph` if that gives at least two steps; else `line` if there are at
      least two non-empty lines; else `sentence`.
    """
    if strategy not in STRATEGIES:
        raise UsageError(f"unknown segmentation strategy {strategy!r}",
                         hint="choose one of " + ", ".join(STRATEGIES))
    if not text or text.isspace():
        return []
    blocks = _regions(text, 0, len(text))
    if strategy == "paragraph":
        return _paragraphs(text, blocks)
    if strategy == "line":
        return _lines(text, blocks)
    if strategy == "sentence":
        return _sentences(text, blocks)
    if strategy == "numbered":
        return _numbered(text, _markers(text, blocks))
    marks = _markers(text, blocks)
    if _in_sequence(marks):
        return _numbered(text, marks)
    spans = _paragraphs(text, blocks)
    if len(spans) >= 2:
        return spans
    spans = _lines(text, blocks)
    if len(spans) >= 2:
        return spans
    return _sentences(text, blocks)


def segment_record(record: dict, strategy: str = "auto") -> dict:
    """Set `steps` and `step_spans` on `record` (in place) from its `response`, and return it.

    Steps a record already has (a non-empty list) are kept as given, and a record without a
    response is returned as it came.
    """
    steps = record.get("steps")
    if isinstance(steps, list) and steps:
        return record
    text = record.get("response")
    if text is None:
        return record
    if not isinstance(text, str):
        raise InputError(f"`response` must be a string, not {type(text).__name__}",
                         field="response", record_id=record.get("id"))
    spans = segment(text, strategy)
    record["steps"] = [text[s:e] for s, e in spans]
    record["step_spans"] = [[s, e] for s, e in spans]
    return record
