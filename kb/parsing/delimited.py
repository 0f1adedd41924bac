"""CSV and TSV text -> table elements of bounded size, each starting with the header row.

unstructured reads a whole CSV into one pandas data frame, renders it as one HTML table and parses that
again: it refuses a file of more than 5 million cells (its CSV_MAX_CELLS; a 1M-row, 10-column file was
reported as "damaged"), and under the parse helper's 2 GB cap lxml already fails on 400,000 rows. Reading
the rows with Python's csv module takes one pass and little memory beyond the text itself. The rows become
table elements as every format's tables do (`kb.parsing.tables`: parts that fit in a chunk, each starting
with the header row).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator

from kb.parsing.tables import HEADER_SHARE, TABLE_PART_WORDS, row_line, table_parts  # noqa: F401  (re-exported)
from kb.records import Element

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
    try:
        return list(table_parts(_rows(csv.reader(_lines(text), delimiter=delimiter))))
    except csv.Error as exc:
        raise RaggedTable(str(exc)) from exc


def _rows(reader: Iterator[list[str]]) -> Iterator[list[str]]:
    """The reader's rows, empty lines skipped; RaggedTable when one holds more cells than the first."""
    width = None
    for row in reader:
        if not row:
            continue
        if width is None:
            width = len(row)
        elif len(row) > width:
            raise RaggedTable(f"a row has {len(row)} cells, the first has {width}")
        yield row


def sniff_delimiter(text: str) -> str:
    """The delimiter csv.Sniffer finds in the first whole lines, or ONE_COLUMN when there is none."""
    sample = text[:SNIFF_CHARS]
    if len(text) > SNIFF_CHARS and "\n" in sample:
        sample = sample[: sample.rindex("\n")]
    try:
        return csv.Sniffer().sniff(sample, delimiters=CSV_DELIMITERS).delimiter
    except csv.Error:
        return ONE_COLUMN


def _lines(text: str) -> Iterator[str]:
    """The lines of `text` with their line ends, one at a time (io.StringIO would copy it at 4 bytes a character)."""
    start, length = 0, len(text)
    while start < length:
        end = text.find("\n", start)
        end = length if end < 0 else end + 1
        yield text[start:end]
        start = end
