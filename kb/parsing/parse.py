"""The parse stage's entry point: file -> elements (headings, paragraphs, list items, tables) in reading order.

`detect_type` decides what the file really is; PDFs are read with pypdfium2 (`kb.parsing.pdf`), everything
else by `kb.parsing.partition`. Every element's text is cleaned (`kb.parsing.text.clean_text`), and every
failure a user can cause becomes a `ParseError` with one readable line.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from kb.parsing.detect import MIB, damaged, detect_type
from kb.parsing.partition import partition
from kb.parsing.pdf import parse_pdf
from kb.parsing.text import clean_text
from kb.parsing.dates import OFFICE_KINDS, office_date
from kb.parsing.titles import fallback_title, real_title
from kb.records import CELL, Element, ParsedFile, ParseError

# A spreadsheet's first heading is a sheet's name, not the workbook's title (it is in the section path).
UNTITLED_KINDS = {"xlsx", "csv"}


def parse_file(path: Path, filename: str | None = None, max_bytes: int | None = None) -> ParsedFile:
    """Parse the file at `path` into elements in reading order. Raises ParseError with a one-line reason."""
    path = Path(path)
    size = path.stat().st_size
    if max_bytes is not None and size > max_bytes:
        raise ParseError(f"file is {size / MIB:.1f} MB, over the {max_bytes / MIB:g} MB limit")
    kind = detect_type(path, filename)
    try:
        parsed = parse_pdf(path) if kind == "pdf" else partition(path, kind)
    except ParseError:
        raise
    except RecursionError as exc:
        raise ParseError("file is nested too deeply to read") from exc
    except MemoryError as exc:
        raise ParseError("file is too large to read into memory") from exc
    except Exception as exc:  # a library's own failure on a file it cannot read
        raise damaged(kind) from exc
    elements = [_cleaned(element) for element in parsed.elements]
    elements = [element for element in elements if element.text]
    if not elements:
        raise ParseError("no text found")
    title = real_title(clean_text(parsed.title or ""))
    if title is None and kind not in UNTITLED_KINDS:
        title = fallback_title(elements)
    date = parsed.date or (office_date(path) if kind in OFFICE_KINDS else None)
    return ParsedFile(elements=elements, pages=parsed.pages, title=title, date=date)


def _cleaned(element: Element) -> Element:
    """The element with its text cleaned, and a table's cells too; a table whose lines no longer match its
    rows one to one (cleaning cannot add lines, but may drop one) loses its cells and reads as text lines."""
    text = clean_text(element.text)
    if not element.cells or text == element.text:  # every non-empty cell stands in the text: clean as well
        return replace(element, text=text) if text != element.text else element
    cells = "\n".join(CELL.join(clean_text(cell) for cell in line.split(CELL)) for line in element.cells.split("\n"))
    if text.count("\n") != cells.count("\n"):
        return replace(element, text=text, cells="", header=False)
    return replace(element, text=text, cells=cells)
