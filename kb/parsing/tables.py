"""Rows of cells -> table elements of bounded size, each starting with the header row, whatever the format.

A chunk is cut between table rows only inside one element, so a long table (a spreadsheet, a CSV, a table of
a Word file, a web page or a slide) is emitted in parts of at most TABLE_PART_WORDS words, and every part
starts with the table's first row: a chunk of rows 40-60 still says what each column is. No format here
marks its header reliably (unstructured renders DOCX, XLSX and PPTX tables without <th>), so the first row
is the header, as a spreadsheet's usually is; a header longer than half a part (hundreds of columns) is not
repeated. A row reads as one line of its non-empty cells separated by " | " (what is indexed and quoted); the
element keeps the cells themselves, empty ones as "", so the table can be shown with its columns in line.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from kb.chunking import count_words
from kb.records import Element

# Below the smallest chunk at the default KB_CHUNK_WORDS (300: chunks of about 200-400 words), so a part is
# never cut between rows by the chunker and the header row heads every chunk.
TABLE_PART_WORDS = 200
# The header row is repeated only while it takes at most this share of a part; a header of a few hundred
# columns would otherwise double the text and still not fit in a chunk with a row.
HEADER_SHARE = 0.5


def table_parts(rows: Iterable[Sequence[str]], part_words: int = TABLE_PART_WORDS) -> Iterator[Element]:
    """Table elements of at most `part_words` words (a part holds one row more when a row alone is longer),
    each starting with the first row when it is short enough to repeat. Rows without text are skipped."""
    header: list[str] = []  # the first row's line, repeated at the start of every part when it is short
    header_cells: list[tuple[str, ...]] = []
    lines: list[str] = []
    cells: list[tuple[str, ...]] = []
    words = header_words = 0
    emitted = False
    for row in rows:
        line = row_line(row)
        if not line:
            continue
        count = _words(line)
        if not lines and not emitted:  # the first row
            lines, cells, words = [line], [_cells(row)], count
            if count <= part_words * HEADER_SHARE:
                header, header_cells, header_words = [line], list(cells), count
            continue
        if words + count > part_words and len(lines) > len(header):
            yield _table(lines, cells, header=bool(header) or not emitted)
            emitted = True
            lines, cells, words = list(header), list(header_cells), header_words
        lines.append(line)
        cells.append(_cells(row))
        words += count
    if len(lines) > len(header) or (lines and not emitted):
        yield _table(lines, cells, header=bool(header) or not emitted)


def row_line(row: Sequence[str]) -> str:
    """A row as one line: its non-empty cells, each with its whitespace collapsed, separated by " | "."""
    # Collapsing the whole line is the same as collapsing each cell, unless a cell is only whitespace: then
    # "| |" or a "|" at an end is left, and only then (rarely) is the row cleaned cell by cell.
    line = " ".join(" | ".join(cell for cell in row if cell).split())
    if "| |" in line or line.startswith("|") or line.endswith("|"):
        line = " | ".join(cell for cell in (" ".join(value.split()) for value in row) if cell)
    return line


def _cells(row: Sequence[str]) -> tuple[str, ...]:
    """The row's cells with their whitespace collapsed (a cell's line breaks must not add lines)."""
    return tuple(cell if cell.isprintable() and "  " not in cell and cell == cell.strip() else " ".join(cell.split())
                 for cell in row)  # fmt: skip


def _words(line: str) -> int:
    """Words as the chunker counts them; for ASCII (no CJK) the spaces tell, much faster."""
    return line.count(" ") + 1 if line.isascii() else count_words(line)


def _table(lines: list[str], cells: list[tuple[str, ...]], *, header: bool) -> Element:
    return Element(text="\n".join(lines), kind="table", rows=tuple(cells), header=header)
