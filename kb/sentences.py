"""Prose -> sentences: the one splitter for quoting passages (kb.answering) and checking answers (kb.claims).

A sentence ends at '.', '!' or '?' followed by whitespace and a capital letter or a digit (an opening
quote, parenthesis or bracket may come first), so "approx. 30 days" and "v2.1 or later" stay whole.
Citation markers right after the full stop ("... portal. [1] Next") stay with their sentence. A stop
after a common abbreviation or a single letter ("e.g.", "Dr.", "J. Smith") does not end a sentence.

Two other splitters in kb do a different job and keep their own rules on purpose:
- kb.chunking (SENTENCE_END) cuts a document into the units chunks are built from: it also breaks before a
  lower-case word, after '…', at CJK full stops and at every line end, and its cuts fix chunk boundaries
  (so changing it would change every indexed chunk);
- kb.parsing.partition (SENTENCE_BOUNDARY) only counts sentences for unstructured's text classifier, which has
  always been fed every '.', '!' or '?' followed by whitespace; another count could reclassify elements.
"""

from __future__ import annotations

import re

# The break after a sentence: its end punctuation, any markers [n] that follow it, the whitespace, and a look
# at the next sentence's start (a bracket may open it, "[Note] ...", but not a marker: that is the last one's).
_BREAK = re.compile(r"(?<=[.!?])(?:\s*\[\d{1,3}\])*\s+(?=[\"'“(]?[A-Z0-9]|\[(?!\d{1,3}\])[A-Z0-9])")
_BLANK_LINE = re.compile(r"\n\s*\n")
_ABBREVIATION = re.compile(r"(?:\b[A-Za-z]|\b(?:e\.g|i\.e|etc|vs|approx|Mr|Mrs|Ms|Dr|St|No|Inc))\.$")


def sentence_spans(text: str, *, abbreviations: bool = True) -> list[tuple[int, int]]:
    """(start, end) of each sentence of `text` in reading order, trailing markers included, blanks skipped.

    Spans index `text` itself, so a caller can map a sentence back to where it stands. With
    `abbreviations=False` a stop after an abbreviation ends the sentence too: what kb.claims was measured
    with (bench/claims_check.py; the abbreviation rule splits 29 of 240 XQuAD paragraphs differently and
    moves its rates by up to 0.9 points, so adopting it there is a change to measure, not a refactoring).
    """
    spans: list[tuple[int, int]] = []
    start = 0
    for match in _BREAK.finditer(text):
        if abbreviations and _ABBREVIATION.search(text, start, match.start()):
            continue  # "e.g. The" goes on; the abbreviation's stop is not the sentence's end
        spans.append((start, match.start() + len(match.group(0).rstrip())))
        start = match.end()
    if text[start:].strip():
        spans.append((start, len(text.rstrip())))
    return [(s, e) for s, e in spans if text[s:e].strip()]


def paragraph_sentence_spans(text: str, *, abbreviations: bool = True) -> list[tuple[int, int]]:
    """`sentence_spans`, with a blank line ending a sentence too: a heading, a list item or an opening note
    "(Extractive answer: ...)" is never run into the sentence after it."""
    spans: list[tuple[int, int]] = []
    start = 0
    for gap in [*_BLANK_LINE.finditer(text), None]:
        end = gap.start() if gap is not None else len(text)
        spans += [(start + s, start + e) for s, e in sentence_spans(text[start:end], abbreviations=abbreviations)]
        if gap is not None:
            start = gap.end()
    return spans


def split_sentences(text: str, *, abbreviations: bool = True) -> list[str]:
    """The sentences of `text` as strings (see `sentence_spans`)."""
    return [text[start:end] for start, end in sentence_spans(text, abbreviations=abbreviations)]
