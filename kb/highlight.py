"""Which words of a passage support an answer, and how to show passages and answers as inert text.

Passage text comes from uploaded files and answers quote it, so neither may ever be read as HTML or
Markdown: a file could otherwise inject a script, a tracking image, a link or a fake button.
`passage_html` escapes every character and adds only its own `<mark>` tags; `markdown_literal`
backslash-escapes every punctuation character, so Markdown shows the text exactly as written.
"""

from __future__ import annotations

import html
import re
import string
from dataclasses import dataclass
from typing import Callable

TermsOf = Callable[[str], set[int]]  # text -> its analyzed terms (stemmed, stop words dropped)

_WORD = re.compile(r"\w+(?:['’]\w+)*")
_MARKER_GROUP = re.compile(r"(?:\s*\[\d+\])+")
_NUMBER = re.compile(r"\[(\d+)\]")
_PARAGRAPH = re.compile(r"\n\s*\n")
_MARKDOWN_SPECIAL = re.compile("([" + re.escape(string.punctuation) + "])")


@dataclass(frozen=True)
class Segment:
    """A run of passage text, marked when its words support the answer."""

    text: str
    marked: bool = False


def supporting_text(answer: str, n: int) -> str:
    """The parts of the answer that cite passage [n]: each claim runs from the previous marker or
    paragraph break up to its markers."""
    parts: list[str] = []
    start = 0
    for group in _MARKER_GROUP.finditer(answer):
        claim = answer[start : group.start()]
        claim = _PARAGRAPH.split(claim)[-1]  # an opening note or an earlier paragraph is not this claim
        if str(n) in _NUMBER.findall(group.group(0)):
            parts.append(claim.strip(string.whitespace + ".,;:"))
        start = group.end()
    return "\n".join(parts)


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
        if merged and merged[-1].marked == piece.marked:
            merged[-1] = Segment(merged[-1].text + piece.text, piece.marked)
        elif piece.marked and len(merged) >= 2 and merged[-2].marked and not merged[-1].text.strip():
            gap = merged.pop()
            merged[-1] = Segment(merged[-1].text + gap.text + piece.text, marked=True)
        else:
            merged.append(piece)
    return merged


def passage_html(segments: list[Segment]) -> str:
    """Escaped passage text with the supporting words in `<mark>`; line breaks are kept by CSS, not tags."""
    return "".join(
        f"<mark>{html.escape(s.text)}</mark>" if s.marked else html.escape(s.text) for s in segments
    )


def answer_html(text: str) -> str:
    """An answer as escaped text, its citation markers [n] in bold so they stand out."""
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
