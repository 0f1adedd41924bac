"""Which sentences and words of a passage support an answer, and how to show passages and answers as inert text.

Passage text comes from uploaded files and answers quote it, so neither may ever be read as HTML or
Markdown: a file could otherwise inject a script, a tracking image, a link or a fake button.
`passage_html` escapes every character and adds only its own `<mark>` tags; `markdown_literal`
backslash-escapes every punctuation character, so Markdown shows the text exactly as written.
"""

from __future__ import annotations

import html
import re
import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Callable

from kb.records import Claim, TableSpan
from kb.sentences import paragraph_sentence_spans

TermsOf = Callable[[str], set[int]]  # text -> its analyzed terms (stemmed, stop words dropped)

_WORD = re.compile(r"\w+(?:['’]\w+)*")
_NUMBER = re.compile(r"\[(\d+)\]")
_MARKDOWN_SPECIAL = re.compile("([" + re.escape(string.punctuation) + "])")


# A sentence of a passage is shown as supporting a claim when it holds at least this share of the claim's
# search terms that no sentence chosen before holds (a claim may join two sentences; up to MAX_SUPPORTING).
MIN_SENTENCE_GAIN = 0.25
MAX_SUPPORTING = 3
LEAD_CHARS = 160  # a supporting sentence starting further into the passage is shown from just before it


@dataclass(frozen=True)
class Segment:
    """A run of passage text, marked when its words support the answer; `focus` when it lies in a sentence
    that supports it."""

    text: str
    marked: bool = False
    focus: bool = False


def mark_words(text: str, support: str, terms_of: TermsOf) -> list[Segment]:
    """Split `text` into segments, marking the words whose terms occur in `support`.

    Words are compared as the search analyzer sees them (stems, no stop words), so "requests"
    supports "request" and "the" supports nothing. Neighbouring marked words form one segment.
    """
    wanted = terms_of(support) if support.strip() else set()
    supports: dict[str, bool] = {}  # a passage repeats its words: analyze each once
    pieces: list[Segment] = []
    position = 0
    for word in _WORD.finditer(text):
        key = word.group(0).lower()
        if key not in supports:
            supports[key] = bool(wanted & terms_of(key))
        if supports[key]:
            pieces += [Segment(text[position : word.start()]), Segment(word.group(0), marked=True)]
            position = word.end()
    pieces.append(Segment(text[position:]))
    return _merge(pieces)


def _merge(pieces: list[Segment]) -> list[Segment]:
    """Join neighbours of the same kind, and marked words separated only by blanks."""
    merged: list[Segment] = []
    for piece in pieces:
        if not piece.text:
            continue
        if merged and (merged[-1].marked, merged[-1].focus) == (piece.marked, piece.focus):
            merged[-1] = Segment(merged[-1].text + piece.text, piece.marked, piece.focus)
        elif (piece.marked and len(merged) >= 2 and merged[-2].marked and not merged[-1].text.strip()
              and merged[-2].focus == merged[-1].focus == piece.focus):
            gap = merged.pop()
            merged[-1] = Segment(merged[-1].text + gap.text + piece.text, marked=True, focus=piece.focus)
        else:
            merged.append(piece)
    return merged


def passage_sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence of a passage: paragraphs (headings, list items) split at blank lines,
    then into sentences (kb.sentences)."""
    return paragraph_sentence_spans(text)


def supporting_spans(text: str, claims: Iterable[str], terms_of: TermsOf) -> list[tuple[int, int]]:
    """The sentences of the passage `text` that support the claims, in reading order.

    For each claim, the sentence holding most of its search terms, then any other that adds at least
    MIN_SENTENCE_GAIN of them (a claim may join two sentences), at most MAX_SUPPORTING. A sentence that
    adds less is no support: a claim sharing only a word or two with the passage gets none."""
    sentences = passage_sentences(text)
    terms = [terms_of(text[start:end]) for start, end in sentences]
    chosen: set[int] = set()
    for claim in claims:
        wanted = terms_of(claim) if claim.strip() else set()
        covered: set[int] = set()
        for _ in range(MAX_SUPPORTING):
            gains = [len((wanted - covered) & held) for held in terms]
            best = max(range(len(terms)), key=lambda i: (gains[i], -i), default=None)
            if best is None or not wanted or gains[best] < max(1.0, MIN_SENTENCE_GAIN * len(wanted)):
                break
            chosen.add(best)
            covered |= terms[best]
    return [sentences[i] for i in sorted(chosen)]


def focus_segments(text: str, spans: Sequence[tuple[int, int]], support: str, terms_of: TermsOf) -> list[Segment]:
    """The passage as segments: the supporting sentences (`spans`) in focus, and inside them the words whose
    terms occur in `support` marked; words elsewhere in the passage are not marked."""
    pieces: list[Segment] = []
    position = 0
    for start, end in spans:
        pieces.append(Segment(text[position:start]))
        pieces += [Segment(s.text, s.marked, focus=True) for s in mark_words(text[start:end], support, terms_of)]
        position = end
    pieces.append(Segment(text[position:]))
    return _merge(pieces)


def excerpt_start(text: str, spans: Sequence[tuple[int, int]], lead_chars: int = LEAD_CHARS) -> int:
    """Where a card starts showing the passage so its first supporting sentence is in sight without
    scrolling: at the start, unless that sentence begins more than `lead_chars` in; then at the sentence
    before it (or the supporting sentence itself, when the one before is long)."""
    if not spans or spans[0][0] <= lead_chars:
        return 0
    first = spans[0][0]
    before = [start for start, end in passage_sentences(text) if start < first]
    if before and first - before[-1] <= 2 * lead_chars:
        return before[-1]
    return first


def clip(segments: Sequence[Segment], start: int) -> list[Segment]:
    """The segments from character `start` of their joined text on."""
    clipped: list[Segment] = []
    position = 0
    for segment in segments:
        end = position + len(segment.text)
        if end > start:
            clipped.append(Segment(segment.text[max(start - position, 0):], segment.marked, segment.focus))
        position = end
    return clipped


def passage_html(segments: list[Segment]) -> str:
    """Escaped passage text with the supporting words in `<mark>` and the supporting sentences in a
    `<span class="kb-support">`; line breaks are kept by CSS, not tags."""
    out: list[str] = []
    in_focus = False
    for segment in segments:
        if segment.focus != in_focus:
            out.append('<span class="kb-support">' if segment.focus else "</span>")
            in_focus = segment.focus
        text = html.escape(segment.text)
        out.append(f"<mark>{text}</mark>" if segment.marked else text)
    if in_focus:
        out.append("</span>")
    return "".join(out)


def passage_with_tables_html(segments: Sequence[Segment], tables: Sequence[TableSpan], start: int = 0) -> str:
    """The passage from character `start` on, as `passage_html` does, with its table rows shown as an HTML
    table of escaped cells: a row in a supporting sentence is highlighted, a cell holding a marked word is
    marked. A table cut by `start` keeps its header row on top."""
    if not tables:
        return passage_html(clip(segments, start))
    ranges = _ranges(segments)
    text = "".join(s.text for s in segments)
    out: list[str] = []
    position = start
    for table in tables:
        if table.end <= start:
            continue
        if table.start > position:
            out.append(passage_html(_between(segments, position, table.start)))
        out.append(_table_html(text, table, ranges, start))
        position = table.end
    out.append(passage_html(_between(segments, position, len(text))))
    return "".join(out)


def _ranges(segments: Sequence[Segment]) -> list[tuple[int, int, Segment]]:
    ranges, position = [], 0
    for segment in segments:
        ranges.append((position, position + len(segment.text), segment))
        position += len(segment.text)
    return ranges


def _between(segments: Sequence[Segment], start: int, end: int) -> list[Segment]:
    """The segments cut to characters [start, end) of their joined text."""
    return [Segment(s.text[max(start - a, 0):end - a], s.marked, s.focus)
            for a, b, s in _ranges(segments) if b > start and a < end]


def _table_html(text: str, table: TableSpan, ranges: list[tuple[int, int, Segment]], start: int) -> str:
    width = max(len(row) for row in table.rows)
    lines = text[table.start:table.end].split("\n")
    rows_html: list[str] = []
    line_start = table.start
    for index, (row, line) in enumerate(zip(table.rows, lines)):
        line_end = line_start + len(line)
        if line_end > start or (index == 0 and table.header):
            overlapping = [s for a, b, s in ranges if a < line_end and b > line_start]
            focus = any(s.focus for s in overlapping)
            marked = " ".join(s.text for a, b, s in ranges if s.marked and a < line_end and b > line_start).casefold()
            tag = "th" if index == 0 and table.header else "td"
            cells = "".join(
                f"<{tag}>" + (f"<mark>{html.escape(cell)}</mark>" if cell and _holds_marked(cell, marked) else html.escape(cell))
                + f"</{tag}>"
                for cell in (*row, *[""] * (width - len(row)))
            )
            rows_html.append(f'<tr class="kb-support">{cells}</tr>' if focus else f"<tr>{cells}</tr>")
        line_start = line_end + 1
    return f'<table class="kb-table">{"".join(rows_html)}</table>'


def _holds_marked(cell: str, marked: str) -> bool:
    words = _WORD.findall(cell.casefold())
    return bool(words) and any(word in marked.split() for word in words)


def answer_html(text: str, claims: Sequence[Claim] = ()) -> str:
    """An answer as escaped text, its citation markers [n] in bold so they stand out. Each claim not
    supported by its passages stays in place, underlined, followed by a warning with the reason in words
    (visible without hovering, and as a tooltip)."""
    out: list[str] = []
    position = 0
    for claim in sorted((c for c in claims if not c.supported), key=lambda c: c.start):
        if claim.start < position or claim.end > len(text) or claim.start >= claim.end:
            continue  # not a span of this text: show the text as it is
        reason = html.escape(f"not supported: {claim.reason}" if claim.reason else "not supported", quote=True)
        out += [
            _with_markers(text[position : claim.start]),
            f'<span class="kb-unsupported">{_with_markers(text[claim.start : claim.end])}</span>',
            f'<span class="kb-flag" title="{reason}">\u26a0 {reason}</span>',
        ]
        position = claim.end
    out.append(_with_markers(text[position:]))
    return "".join(out)


def _with_markers(text: str) -> str:
    return _NUMBER.sub(r"<b>[\1]</b>", html.escape(text))


# Markdown turns bare addresses (http://…, www.…, name@host) into links after parsing, escapes or
# not; an invisible word joiner before every ':', '.' and '@' stops it. Character by character, so
# text streamed in pieces gets the same treatment; only for text shown while it streams.
_WORD_JOINER = "\u2060"


def markdown_literal(text: str) -> str:
    """Text that Markdown renders as written: every punctuation character is escaped and addresses
    are broken up, so no link, image, emphasis, HTML, math or Streamlit directive can form."""
    escaped = _MARKDOWN_SPECIAL.sub(r"\\\1", text)
    escaped = re.sub(r"(?=\\[:.@])", _WORD_JOINER, escaped)
    escaped = re.sub(r"(?m)^[ \t]+", "", escaped)  # an indented line would become a code block
    return re.sub(r"(?<!\n)\n(?!\n)", "  \n", escaped)
