"""CSV and TSV text -> table elements of bounded size, each starting with the header row.

unstructured reads a whole CSV into one pandas data frame, renders it as one HTML table and parses that
again: it refuses a file of more than 5 million cells (its CSV_MAX_CELLS; a 1M-row, 10-column file was
reported as "damaged"), and under the parse helper's 2 GB cap lxml already fails on 400,000 rows. Reading
the rows with Python's csv module takes one pass and little memory beyond the text itself. The rows are
emitted in parts of at most TABLE_PART_WORDS words, so that a part fits in one chunk at the default chunk
size, and each part starts with the first (header) row, so every chunk of a long table still says what its
columns are; a header longer than half a part (hundreds of columns) is not repeated. A row is one line of
its non-empty cells separated by " | ", as `kb.parsing.partition.table_text` writes tables.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator

from kb.chunking import count_words
from kb.records import Element

# Below the smallest chunk at the default KB_CHUNK_WORDS (300: chunks of about 200-400 words), so a part is
# never cut between rows by the chunker and the header row heads every chunk.
TABLE_PART_WORDS = 200
# The header row is repeated only while it takes at most this share of a part; a header of a few hundred
# columns would otherwise double the text and still not fit in a chunk with a row.
HEADER_SHARE = 0.5
SNIFF_CHARS = 64 * 1024
CSV_DELIMITERS = ",;|\t"
ONE_COLUMN = "\x1f"  # the ASCII unit separator: a file without delimiters is one column
FIELD_LIMIT = 10 * 1024 * 1024  # characters in one cell (the csv module's default, 128 KiB, is too small)


class RaggedTable(ValueError):
    """A row holds more cells than the first one: the file is not a table (read it as text instead)."""


def delimited_tables(text: str, delimiter: str | None = None) -> list[Element]:
    """The rows of `text` as table elements; `delimiter` None sniffs it from the first lines (as for .csv).

    Raises RaggedTable when a row has more cells than the first, or the csv module cannot read the text.
    """
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if delimiter is None:
        delimiter = sniff_delimiter(text)
    csv.field_size_limit(max(csv.field_size_limit(), FIELD_LIMIT))
    elements: list[Element] = []
    header: list[str] = []  # the first row's line, and again at the start of every part when it is short
    part: list[str] = []
    part_words = header_words = width = 0
    try:
        for row in csv.reader(_lines(text), delimiter=delimiter):
            if not row:
                continue
            if not part and not elements:
                width = len(row)
            elif len(row) > width:
                raise RaggedTable(f"a row has {len(row)} cells, the first has {width}")
            line = row_line(row)
            if not line:
                continue
            words = _words(line)
            if not part and not elements:  # the first row
                part, part_words = [line], words
                header = [line] if words <= TABLE_PART_WORDS * HEADER_SHARE else []
                header_words = words if header else 0
                continue
            if part_words + words > TABLE_PART_WORDS and len(part) > len(header):
                elements.append(_table(part))
                part, part_words = list(header), header_words
            part.append(line)
            part_words += words
    except csv.Error as exc:
        raise RaggedTable(str(exc)) from exc
    if len(part) > len(header) or (part and not elements):
        elements.append(_table(part))
    return elements


def sniff_delimiter(text: str) -> str:
    """The delimiter csv.Sniffer finds in the first whole lines, or ONE_COLUMN when there is none."""
    sample = text[:SNIFF_CHARS]
    if len(text) > SNIFF_CHARS and "\n" in sample:
        sample = sample[: sample.rindex("\n")]
    try:
        return csv.Sniffer().sniff(sample, delimiters=CSV_DELIMITERS).delimiter
    except csv.Error:
        return ONE_COLUMN


def row_line(row: list[str]) -> str:
    """A row as one line: its non-empty cells, each with its whitespace collapsed, separated by " | "."""
    # Collapsing the whole line is the same as collapsing each cell, unless a cell is only whitespace: then
    # "| |" or a "|" at an end is left, and only then (rarely) is the row cleaned cell by cell.
    line = " ".join(" | ".join(cell for cell in row if cell).split())
    if "| |" in line or line.startswith("|") or line.endswith("|"):
        line = " | ".join(cell for cell in (" ".join(value.split()) for value in row) if cell)
    return line


def _words(line: str) -> int:
    """Words as the chunker counts them; for ASCII (no CJK) the spaces tell, much faster."""
    return line.count(" ") + 1 if line.isascii() else count_words(line)


def _table(lines: list[str]) -> Element:
    return Element(text="\n".join(lines), kind="table")


def _lines(text: str) -> Iterator[str]:
    """The lines of `text` with their line ends, one at a time (io.StringIO would copy it at 4 bytes a character)."""
    start, length = 0, len(text)
    while start < length:
        end = text.find("\n", start)
        end = length if end < 0 else end + 1
        yield text[start:end]
        start = end
