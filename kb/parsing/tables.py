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
from kb.records import CELL, Element

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
    header_cells: list[str] = []
    lines: list[str] = []
    cells: list[str] = []  # each line's cells, joined by CELL
    words = header_words = 0
    emitted = False
    for row in rows:
        line, row_cells = _row(row)
        if not line:
            continue
        count = _words(line)
        if not lines and not emitted:  # the first row
            lines, cells, words = [line], [row_cells], count
            if count <= part_words * HEADER_SHARE:
                header, header_cells, header_words = [line], [row_cells], count
            continue
        if words + count > part_words and len(lines) > len(header):
            yield _table(lines, cells, header=bool(header) or not emitted)
            emitted = True
            lines, cells, words = list(header), list(header_cells), header_words
        lines.append(line)
        cells.append(row_cells)
        words += count
    if len(lines) > len(header) or (lines and not emitted):
        yield _table(lines, cells, header=bool(header) or not emitted)


def row_line(row: Sequence[str]) -> str:
    """A row as one line: its non-empty cells, each with its whitespace collapsed, separated by " | "."""
    return _row(row)[0]


def _row(row: Sequence[str]) -> tuple[str, str]:
    """The row's line and its cells joined by CELL, each cell's whitespace collapsed (so that a cell's line
    break adds no line, and the cells say what the line does)."""
    raw = " | ".join(cell for cell in row if cell)
    line = " ".join(raw.split())
    if line == raw:  # the common case: no cell has whitespace to collapse (nor a CELL: split() takes it too)
        return line, CELL.join(row)
    cleaned = [" ".join(cell.split()) for cell in row]
    return " | ".join(cell for cell in cleaned if cell), CELL.join(cleaned)


def _words(line: str) -> int:
    """Words as the chunker counts them; for ASCII (no CJK) the spaces tell, much faster."""
    return line.count(" ") + 1 if line.isascii() else count_words(line)


def _table(lines: list[str], cells: list[str], *, header: bool) -> Element:
    return Element(text="\n".join(lines), kind="table", cells="\n".join(cells), header=header)
