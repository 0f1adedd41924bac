"""The chunker as it was before it streamed (kb/chunking.py at 8eb3336), kept verbatim as the reference
the streaming `iter_chunks` must agree with chunk for chunk. Test code only: never imported by kb."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePath

from kb.records import Chunk, Element, ParsedFile

SEPARATOR = "\n\n"

# Break strengths, weakest first: where a unit starts relative to the one before it.
WORD, SENTENCE, PARAGRAPH, SECTION = range(4)

CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
# A word: one CJK character (those scripts do not separate words), or up to 40 other non-space characters,
# so a run without spaces still gets split.
WORD_PATTERN = re.compile(rf"[{CJK}]|[^\s{CJK}]{{1,40}}")
SENTENCE_END = re.compile(r"[.!?…][\"'”’)\]]*\s+|[。！？]\s*|\n\s*")


@dataclass(frozen=True)
class Unit:
    """The smallest piece a chunk is made of: a heading, a sentence, a table row or a run of words."""

    start: int  # offsets into document_text
    end: int
    words: int
    page: int | None
    boundary: int  # strength of the break before this unit
    level: int  # heading level of the section the unit belongs to (-1 before the first heading)
    section: str | None  # nearest heading at or above the unit
    is_heading: bool = False


def document_text(parsed: ParsedFile) -> str:
    """The text all chunk offsets point into: the elements' texts joined by blank lines."""
    return SEPARATOR.join(element_text(element) for element in parsed.elements)


def element_text(element: Element) -> str:
    """An element as it reads in a passage: list items keep a bullet, so a list still looks like one."""
    return f"- {element.text}" if element.kind == "list_item" else element.text


def count_words(text: str) -> int:
    """Words as chunk sizes count them: CJK characters one by one, long runs without spaces in pieces."""
    return len(WORD_PATTERN.findall(text))


def chunk_document(
    parsed: ParsedFile,
    *,
    doc_id: str,
    version: int,
    source: str,
    target_words: int = 300,
    groups: tuple[str, ...] = (),
) -> list[Chunk]:
    """Split a parsed file into chunks of about `target_words` words (between 2/3 and 4/3 of it where possible)."""
    min_words, max_words = round(target_words * 2 / 3), round(target_words * 4 / 3)
    text = document_text(parsed)
    units = split_units(parsed, target_words, max_words)
    section_words = _section_words(units)
    title = parsed.title or PurePath(source).stem
    chunks: list[Chunk] = []
    start = 0
    while start < len(units):
        end = _chunk_end(units, start, section_words, min_words, target_words, max_words)
        members = units[start:end]
        pages = [unit.page for unit in members if unit.page is not None]
        body = next((unit for unit in members if not unit.is_heading), members[-1])
        seq = len(chunks)
        chunks.append(
            Chunk(
                chunk_id=f"{doc_id}:{version}:{seq}",
                doc_id=doc_id,
                version=version,
                seq=seq,
                source=source,
                text=text[members[0].start : members[-1].end],
                page_start=min(pages, default=None),
                page_end=max(pages, default=None),
                section=body.section,
                title=title,
                char_start=members[0].start,
                char_end=members[-1].end,
                groups=tuple(groups),
            )
        )
        start = end
    return chunks


def split_units(parsed: ParsedFile, target_words: int, max_words: int) -> list[Unit]:
    """Headings whole; paragraphs and list items by sentence, tables by row; over-long ones by words."""
    units: list[Unit] = []
    section, level, offset = None, -1, 0
    for element in parsed.elements:
        text = element_text(element)
        is_heading = element.kind == "title" and count_words(text) <= max_words  # else it is no heading
        if is_heading:
            section, level = text, element.level
            spans = [(0, len(text), SECTION)]
        else:
            spans = _body_spans(text, element.kind == "table", target_words, max_words)
        for start, end, strength in spans:
            units.append(
                Unit(
                    start=offset + start,
                    end=offset + end,
                    words=count_words(text[start:end]),
                    page=element.page,
                    boundary=strength,
                    level=level,
                    section=section,
                    is_heading=is_heading,
                )
            )
        offset += len(text) + len(SEPARATOR)
    return units


def _body_spans(text: str, is_table: bool, target_words: int, max_words: int) -> list[tuple[int, int, int]]:
    """(start, end, break strength before it) of each unit of a paragraph, list item or table."""
    if is_table:
        pieces = [(0, len(text))] if count_words(text) <= max_words else _line_spans(text)
    else:
        pieces = _sentence_spans(text)
    spans = [span for start, end in pieces for span in _fit(text, start, end, target_words, max_words)]
    return [(start, end, PARAGRAPH if index == 0 else strength) for index, (start, end, strength) in enumerate(spans)]


def _sentence_spans(text: str) -> list[tuple[int, int]]:
    spans, start = [], 0
    for match in SENTENCE_END.finditer(text):
        if text[start : match.end()].strip():
            spans.append((start, start + len(text[start : match.end()].rstrip())))
        start = match.end()
    if text[start:].strip():
        spans.append((start, len(text.rstrip())))
    return spans


def _line_spans(text: str) -> list[tuple[int, int]]:
    return [match.span() for match in re.finditer(r"[^\n]*\S[^\n]*", text)]


def _fit(text: str, start: int, end: int, target_words: int, max_words: int) -> list[tuple[int, int, int]]:
    """A sentence or row as one unit or, when it is longer than a chunk, as runs of `target_words` words."""
    words = [match.span() for match in WORD_PATTERN.finditer(text, start, end)]
    if len(words) <= max_words:
        return [(start, end, SENTENCE)]
    runs = [words[i : i + target_words] for i in range(0, len(words), target_words)]
    return [(run[0][0], run[-1][1], SENTENCE if i == 0 else WORD) for i, run in enumerate(runs)]


def _section_words(units: list[Unit]) -> dict[int, int]:
    """For each section start, the words up to the next one. Headings in a row open one section together."""
    totals: dict[int, int] = {}
    current = None
    for index, unit in enumerate(units):
        if _starts_section(units, index):
            current = index
            totals[current] = 0
        if current is not None:
            totals[current] += unit.words
    return totals


def _starts_section(units: list[Unit], index: int) -> bool:
    return units[index].is_heading and not (index and units[index - 1].is_heading)


def _chunk_end(
    units: list[Unit], start: int, section_words: dict[int, int], min_words: int, target_words: int, max_words: int
) -> int:
    """Index of the first unit after the chunk that begins at `start`."""
    words, level = 0, None  # level: that of the section the chunk's first words belong to
    candidates: list[tuple[int, int, int]] = []  # (break strength, words before the break, index)
    for index in range(start, len(units)):
        unit = units[index]
        if index > start:
            if level is not None and _starts_section(units, index):
                takes_next_section = (  # a sibling or a subsection, whole, into a chunk still too short
                    words < min_words and unit.level >= level and words + section_words[index] <= max_words
                )
                if not takes_next_section:
                    return index
            elif level is not None and not units[index - 1].is_heading:  # a chunk ends on body text
                candidates.append((unit.boundary, words, index))
            if words + unit.words > max_words:
                best = _best_break(candidates, min_words, target_words)
                return index if best is None else best
        words += unit.words
        if level is None and not unit.is_heading:
            level = unit.level
    return len(units)


def _best_break(candidates: list[tuple[int, int, int]], min_words: int, target_words: int) -> int | None:
    """The strongest break that leaves at least `min_words`, nearest the target; else the longest clean one."""
    long_enough = [c for c in candidates if c[1] >= min_words]
    if long_enough:
        return max(long_enough, key=lambda c: (c[0], -abs(c[1] - target_words)))[2]
    if candidates:
        return max(candidates, key=lambda c: (c[0] >= SENTENCE, c[1]))[2]
    return None
