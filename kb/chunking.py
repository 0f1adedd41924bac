"""Elements -> chunks: passages of about `target_words` words that follow the document's own structure.

Offsets and page spans make a chunk citable, so every chunk is one contiguous span of `document_text(parsed)`
(the elements' texts joined by blank lines). A chunk ends where the best break lies between two thirds and
four thirds of the target: a section start beats a paragraph end, which beats a sentence end; a sentence is
cut between words only when it alone is longer than a chunk. Every heading starts a new chunk (headings in a
row start one together, and no chunk ends on a heading), except that a chunk still shorter than the minimum
takes in the next section whole when it fits and sits under the same parent heading (a sibling or a
subsection), so short FAQ entries do not become crumbs. Slides are the exception to that exception: every
slide starts a chunk (`Element.slide`), because a deck's reader asks for a slide, and a title slide merged
into the next three was neither found by its own words nor cited with its own number and heading. A chunk's
section is the heading nearest above its first words of body text.
A table is cut only between its rows, and a chunk names the rows it holds, with their cells, in
`Chunk.tables` (offsets into its text), so they can be shown as a table; that every table chunk starts with
the header row is the parser's doing (`kb.parsing.tables`: parts smaller than a chunk, each headed by it).

The rules look ahead about one chunk (a chunk ends within `max_words` of its start, and whether a short
chunk takes in the next section depends only on whether that section exceeds what is left of
`max_words`), so `iter_chunks` cuts a stream of elements while holding only a window of about two
chunks' units and the texts of the elements they lie in: a file of any size in bounded memory.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import chain, islice

from kb.records import CELL, Chunk, Element, ParsedFile, TableSpan

SEPARATOR = "\n\n"

# Break strengths, weakest first: where a unit starts relative to the one before it.
WORD, SENTENCE, PARAGRAPH, SECTION = range(4)

CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
# A word: one CJK character (those scripts do not separate words), or up to 40 other non-space characters,
# so a run without spaces still gets split.
WORD_PATTERN = re.compile(rf"[{CJK}]|[^\s{CJK}]{{1,40}}")
# Not kb.sentences on purpose: unit boundaries also fall before lower-case words, after '…', at CJK stops and
# at line ends, and they fix where every indexed chunk starts (kb/sentences.py says more).
SENTENCE_END = re.compile(r"[.!?…][\"'”’)\]]*\s+|[。！？]\s*|\n\s*")


@dataclass(frozen=True, slots=True)
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
    path: tuple[str, ...] = ()  # the headings the unit stands under, outermost first (ends with section)
    new_slide: bool = False  # the first unit of a slide after another: a chunk always starts here


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
    return list(
        iter_chunks(
            parsed.elements, title=parsed.title, doc_id=doc_id, version=version, source=source,
            target_words=target_words, groups=groups, date=parsed.date,
        )
    )


def iter_chunks(
    elements: Iterable[Element],
    *,
    title: str | None,
    doc_id: str,
    version: int,
    source: str,
    target_words: int = 300,
    groups: tuple[str, ...] = (),
    date: str | None = None,
) -> Iterator[Chunk]:
    """The chunks `chunk_document` makes, one at a time, reading `elements` only as far as the next one needs.

    `title` and `date` are the document's own (ParsedFile.title, .date), None when it has none.
    """
    min_words, max_words = round(target_words * 2 / 3), round(target_words * 4 / 3)
    window = _Window(elements, target_words, max_words)
    seq = 0
    while window.unit(window.base) is not None:
        start = window.base
        end = _chunk_end(window, start, min_words, target_words, max_words)
        members = window.units(start, end)
        pages = [unit.page for unit in members if unit.page is not None]
        body = next((unit for unit in members if not unit.is_heading), members[-1])
        page_starts: list[tuple[int, int]] = []
        for unit in members:
            if unit.page is not None and (not page_starts or unit.page != page_starts[-1][1]):
                page_starts.append((unit.start - members[0].start, unit.page))
        yield Chunk(
            chunk_id=f"{doc_id}:{version}:{seq}",
            doc_id=doc_id,
            version=version,
            seq=seq,
            source=source,
            text=window.text(members[0].start, members[-1].end),
            page_start=min(pages, default=None),
            page_end=max(pages, default=None),
            section=body.section,
            headings=body.path,
            title=title,
            date=date,
            char_start=members[0].start,
            char_end=members[-1].end,
            groups=tuple(groups),
            page_starts=tuple(page_starts),
            section_starts=tuple((u.start - members[0].start, u.section or "") for u in members if u.is_heading),
            tables=window.tables(members[0].start, members[-1].end),
        )
        seq += 1
        window.drop_before(end)


class _Window:
    """The units from the current chunk's start to as far as the rules have looked, numbered as in the
    whole document, and the texts of the elements they lie in (to cut chunk texts from)."""

    def __init__(self, elements: Iterable[Element], target_words: int, max_words: int):
        self._texts: deque[tuple[int, str, Element]] = deque()  # (offset in document_text, element_text, element)
        self._stream = _iter_units(elements, target_words, max_words, self._texts)
        self._units: list[Unit] = []
        self._starts: list[bool] = []  # whether each unit starts a section
        self._after_heading = False  # whether the last unit read was a heading
        self.base = 0  # the document-wide number of self._units[0]

    def unit(self, index: int) -> Unit | None:
        """Unit number `index` (>= base), read from the stream if need be; None past the document's end."""
        while index - self.base >= len(self._units):
            unit = next(self._stream, None)
            if unit is None:
                return None
            self._starts.append(unit.is_heading and not self._after_heading)
            self._after_heading = unit.is_heading
            self._units.append(unit)
        return self._units[index - self.base]

    def units(self, start: int, end: int) -> list[Unit]:
        return self._units[start - self.base : end - self.base]

    def starts_section(self, index: int) -> bool:
        """A heading not preceded by a heading: headings in a row open one section together."""
        return self._starts[index - self.base]

    def section_fits(self, index: int, budget: int) -> bool:
        """Whether the section starting at `index` has at most `budget` words; reads no further than that."""
        total, at = 0, index
        while (unit := self.unit(at)) is not None and (at == index or not self.starts_section(at)):
            total += unit.words
            if total > budget:
                return False
            at += 1
        return True

    def text(self, start: int, end: int) -> str:
        """document_text[start:end], from the elements held (a chunk spans whole separators between them)."""
        pieces = []
        for offset, text, _ in self._texts:
            if offset > end:
                break
            if offset + len(text) >= start:
                pieces.append(text[max(start - offset, 0) : end - offset])
        return SEPARATOR.join(pieces)

    def tables(self, start: int, end: int) -> tuple[TableSpan, ...]:
        """The whole table rows within document_text[start:end], with their cells, offsets from `start`."""
        spans = []
        for offset, text, element in self._texts:
            if offset > end:
                break
            if not element.cells or offset + len(text) <= start:
                continue
            if span := _table_span(text, element, start - offset, end - offset):
                spans.append(TableSpan(span.start + offset - start, span.end + offset - start, span.rows, span.header))
        return tuple(spans)

    def drop_before(self, index: int) -> None:
        """Forget units before `index` and the elements that lie wholly before unit `index`."""
        following = self.unit(index)
        del self._units[: index - self.base], self._starts[: index - self.base]
        self.base = index
        if following is None:
            self._texts.clear()
            return
        while self._texts and self._texts[0][0] + len(self._texts[0][1]) < following.start:
            self._texts.popleft()


def _table_span(text: str, element: Element, start: int, end: int) -> TableSpan | None:
    """The lines of a table element's `text` that lie wholly within text[start:end], with their rows (offsets
    into `text`); None when there is none, or the element's cells do not match its lines."""
    if text.count("\n") != element.cells.count("\n"):
        return None
    start, end = max(start, 0), min(end, len(text))
    first = text.count("\n", 0, start)
    span_start = text.rfind("\n", 0, start) + 1
    if span_start < start:  # the range begins inside a row (one longer than a chunk): from the next row on
        span_start = text.find("\n", start) + 1
        first += 1
        if span_start == 0:
            return None
    last, span_end, at = first, span_start, span_start
    while at <= end:  # `at` starts row `last`
        newline = text.find("\n", at)
        stop = len(text) if newline < 0 else newline
        if stop > end:
            break
        last, span_end = last + 1, stop
        if newline < 0:
            break
        at = newline + 1
    if last == first:
        return None
    rows = tuple(tuple(line.split(CELL)) for line in element.cells.split("\n")[first:last])
    return TableSpan(span_start, span_end, rows, element.header and first == 0)


def split_units(parsed: ParsedFile, target_words: int, max_words: int) -> list[Unit]:
    """Headings whole; paragraphs and list items by sentence, tables by row; over-long ones by words."""
    return list(_iter_units(parsed.elements, target_words, max_words, deque(maxlen=0)))


def _iter_units(
    elements: Iterable[Element], target_words: int, max_words: int, texts: deque[tuple[int, str, Element]]
) -> Iterator[Unit]:
    """The units of `elements` in order; each element's (offset, text, element) goes into `texts` before its units."""
    section, level, offset = None, -1, 0
    open_headings: list[tuple[int, str]] = []  # (level, text) of the headings above, outermost first
    page: int | None = None  # the page of the element before
    for element in elements:
        new_slide = element.slide and page is not None and element.page != page
        page = element.page
        text = element_text(element)
        texts.append((offset, text, element))
        is_heading = element.kind == "title" and _at_most(text, max_words)  # else it is no heading
        if is_heading:
            section, level = text, element.level
            while open_headings and open_headings[-1][0] >= level:
                open_headings.pop()
            open_headings.append((level, text))
            spans: Iterable[tuple[int, int, int, int]] = [(0, len(text), count_words(text), SECTION)]
        else:
            spans = _body_spans(text, element.kind == "table", target_words, max_words)
        for start, end, words, strength in spans:
            yield Unit(
                start=offset + start,
                end=offset + end,
                words=words,
                page=element.page,
                boundary=strength,
                level=level,
                section=section,
                is_heading=is_heading,
                path=tuple(heading for _, heading in open_headings),
                new_slide=new_slide,
            )
            new_slide = False
        offset += len(text) + len(SEPARATOR)


def _at_most(text: str, limit: int) -> bool:
    """count_words(text) <= limit, without counting further than that."""
    return sum(1 for _ in islice(WORD_PATTERN.finditer(text), limit + 1)) <= limit


def _body_spans(text: str, is_table: bool, target_words: int, max_words: int) -> Iterator[tuple[int, int, int, int]]:
    """(start, end, words, break strength before it) of each unit of a paragraph, list item or table."""
    if is_table:
        pieces: Iterable[tuple[int, int]] = [(0, len(text))] if _at_most(text, max_words) else _line_spans(text)
    else:
        pieces = _sentence_spans(text)
    first = True
    for start, end in pieces:
        for span_start, span_end, words, strength in _fit(text, start, end, target_words, max_words):
            yield span_start, span_end, words, PARAGRAPH if first else strength
            first = False


def _sentence_spans(text: str) -> Iterator[tuple[int, int]]:
    start = 0
    for match in SENTENCE_END.finditer(text):
        if text[start : match.end()].strip():
            yield start, start + len(text[start : match.end()].rstrip())
        start = match.end()
    if text[start:].strip():
        yield start, len(text.rstrip())


def _line_spans(text: str) -> Iterator[tuple[int, int]]:
    return (match.span() for match in re.finditer(r"[^\n]*\S[^\n]*", text))


def _fit(text: str, start: int, end: int, target_words: int, max_words: int) -> Iterator[tuple[int, int, int, int]]:
    """A sentence or row as one unit or, when it is longer than a chunk, as runs of `target_words` words:
    (start, end, words, strength). Holds at most one chunk's worth of word positions, however long it is."""
    words = WORD_PATTERN.finditer(text, start, end)
    head = list(islice(words, max_words + 1))
    if len(head) <= max_words:
        yield start, end, len(head), SENTENCE
        return
    run_start = run_end = count = 0
    strength = SENTENCE
    for match in chain(head, words):
        if count == 0:
            run_start = match.start()
        run_end = match.end()
        count += 1
        if count == target_words:
            yield run_start, run_end, count, strength
            count, strength = 0, WORD
    if count:
        yield run_start, run_end, count, strength


def _chunk_end(window: _Window, start: int, min_words: int, target_words: int, max_words: int) -> int:
    """Index of the first unit after the chunk that begins at `start`."""
    words, level = 0, None  # level: that of the section the chunk's first words belong to
    candidates: list[tuple[int, int, int]] = []  # (break strength, words before the break, index)
    index = start
    while (unit := window.unit(index)) is not None:
        if index > start:
            if unit.new_slide:
                return index
            if level is not None and window.starts_section(index):
                takes_next_section = (  # a sibling or a subsection, whole, into a chunk still too short
                    words < min_words and unit.level >= level and window.section_fits(index, max_words - words)
                )
                if not takes_next_section:
                    return index
            elif level is not None and not _is_heading(window.unit(index - 1)):  # a chunk ends on body text
                candidates.append((unit.boundary, words, index))
            if words + unit.words > max_words:
                best = _best_break(candidates, min_words, target_words)
                return index if best is None else best
        words += unit.words
        if level is None and not unit.is_heading:
            level = unit.level
        index += 1
    return index


def _best_break(candidates: list[tuple[int, int, int]], min_words: int, target_words: int) -> int | None:
    """The strongest break that leaves at least `min_words`, nearest the target; else the longest clean one."""
    long_enough = [c for c in candidates if c[1] >= min_words]
    if long_enough:
        return max(long_enough, key=lambda c: (c[0], -abs(c[1] - target_words)))[2]
    if candidates:
        return max(candidates, key=lambda c: (c[0] >= SENTENCE, c[1]))[2]
    return None


def _is_heading(unit: Unit | None) -> bool:
    return unit is not None and unit.is_heading
