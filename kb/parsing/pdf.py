"""PDF -> elements with pypdfium2: each page's text layer, split into paragraphs, list items and obvious headings.

pypdfium2 reads page text fast (about 500 pages/s here) without the torch-heavy stack unstructured needs for
PDFs. pdfium returns lines, not paragraphs, so the structure is inferred from line lengths, conservatively:
a line shorter than the page's wrapped lines ends a paragraph when it ends a sentence; a short line without
final punctuation becomes a heading only when body text follows it. Lines repeated at the top or bottom of
most pages (running headers, footers, page numbers) are dropped. A PDF without any text layer (a scan) is read
with OCR (`kb.parsing.ocr`) when tesseract is installed; its text is structured the same way.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from pathlib import Path

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from kb.parsing.dates import pdf_date
from kb.parsing.titles import real_title
from kb.records import Element, ElementKind, ParsedFile, ParseError

# pdfium is not thread-safe: one document at a time per process.
PDFIUM_LOCK = threading.Lock()

SOFT_HYPHEN = re.compile(r"\x02(\r\n|\r|\n)?")  # pdfium marks a word hyphenated across lines with \x02
SYMBOL_BULLET = re.compile(r"^([•●○◦▪▫■□➢►▸‣⁃]\s*|[*\-–—]\s+)")
NUMBERED_ITEM = re.compile(r"^\(?(\d{1,2}|[a-zA-Z])[.)]\s+")
ENDS_CLAUSE = re.compile(r"[.!?:;][\"'”’)\]]*$")
ENDS_SENTENCE = re.compile(r"[.!?][\"'”’)\]]*$")

PAGE_NUMBER = r"(page\s+)?\d{1,3}(\s+of\s+\d{1,3})?"  # not a year
PAGE_NUMBER_EDGES = re.compile(rf"^[\s|·•\-–—/]*{PAGE_NUMBER}[\s|·•\-–—/]*(?=\D)|(?<=\D)[\s|·•\-–—/]+{PAGE_NUMBER}[\s|·•\-–—/]*$", re.I)
NOT_A_TITLE = re.compile(r"^(table of contents|contents|page|continued|confidential|draft|item|part)\b", re.I)
WORDS = re.compile(r"[^\W\d_]{2,}")

WRAPPED = 0.75  # a line at least this share of the typical line length was wrapped by the layout
HEADING_MAX_SHARE = 0.6  # a heading is shorter than this share of the typical line
HEADING_MAX_WORDS = 10
BODY_MIN_WORDS = 8


def parse_pdf(path: Path) -> ParsedFile:
    """Elements of a PDF's text layer, one or more per page, with 1-based page numbers."""
    pages, title, date = read_document(path)
    elements = document_elements(pages) or scanned_elements(path, len(pages))
    return ParsedFile(elements=elements, pages=len(pages), title=real_title(title) or running_title(pages), date=date)


def document_elements(pages: list[list[str]]) -> list[Element]:
    """The elements of every page's lines, running headers and footers dropped."""
    pages = drop_running_lines(pages)
    width = typical_line_length([line for lines in pages for line in lines])
    return [element for number, lines in enumerate(pages, 1) for element in page_elements(lines, number, width)]


def scanned_elements(path: Path, page_count: int) -> list[Element]:
    """The elements OCR reads in a PDF without a text layer. Raises ParseError when there is none either."""
    from kb.parsing import ocr  # it uses this module's PDFIUM_LOCK: imported here, not at the top, to avoid a cycle

    if not ocr.ocr_available():
        raise ParseError("no text found (scanned image; OCR is not enabled)")
    texts = ocr.ocr_pdf_pages(path, range(page_count))
    elements = document_elements([page_lines(text) for text in texts])
    if not elements:
        raise ParseError("no text found (scanned image; OCR found no text)")
    return elements


def read_document(path: Path) -> tuple[list[list[str]], str | None, str | None]:
    """The lines of every page, the document's own title and its date (ISO, kb.parsing.dates). A page
    pdfium cannot load counts as empty."""
    with PDFIUM_LOCK:
        try:
            document = pdfium.PdfDocument(str(path))
        except pdfium.PdfiumError as exc:
            if exc.err_code == pdfium_c.FPDF_ERR_PASSWORD:
                raise ParseError("password-protected") from exc
            raise ParseError("file is damaged or not a valid PDF") from exc
        try:
            pages, failed = [], 0
            for index in range(len(document)):
                try:
                    pages.append(page_lines(_page_text(document, index)))
                except pdfium.PdfiumError:
                    pages.append([])
                    failed += 1
            if failed and failed == len(pages):
                raise ParseError("file is damaged or not a valid PDF")
            metadata = document.get_metadata_dict()
            date = pdf_date(metadata.get("ModDate"), metadata.get("CreationDate"))
            return pages, metadata.get("Title") or None, date  # kb.parsing.titles judges the title
        finally:
            document.close()


def _page_text(document: pdfium.PdfDocument, index: int) -> str:
    page = document[index]
    try:
        textpage = page.get_textpage()
        try:
            return textpage.get_text_bounded()
        finally:
            textpage.close()
    finally:
        page.close()


def page_lines(text: str) -> list[str]:
    """Non-empty lines with hyphenation undone and runs of spaces collapsed."""
    lines = (" ".join(line.split()) for line in SOFT_HYPHEN.sub("", text).splitlines())
    return [line for line in lines if line]


def drop_running_lines(pages: list[list[str]]) -> list[list[str]]:
    """Remove lines that recur among the first or last two lines of most pages (digits ignored)."""
    running = set(running_lines(pages))
    if not running:
        return pages
    return [[ln for i, ln in enumerate(lines) if not (_is_edge(i, lines) and _line_key(ln) in running)] for lines in pages]


def running_lines(pages: list[list[str]]) -> dict[str, str]:
    """The running headers and footers: key (lower case, digits as #) -> the line as first printed, most
    frequent first. Empty for a document of fewer than three pages with text."""
    with_text = sum(1 for lines in pages if lines)
    if with_text < 3:
        return {}
    seen: Counter[str] = Counter()
    printed: dict[str, str] = {}
    for lines in pages:
        for line in {ln for i, ln in enumerate(lines) if _is_edge(i, lines)}:
            seen[_line_key(line)] += 1
            printed.setdefault(_line_key(line), line)
    return {key: printed[key] for key, count in seen.most_common() if count >= max(3, with_text // 2)}


def running_title(pages: list[list[str]]) -> str | None:
    """The document's name as its running header or footer prints it ("Apple Inc. | Q3 2022 Form 10-Q | 5"
    -> "Apple Inc. | Q3 2022 Form 10-Q"), when one has words; page numbers and "Table of contents" are not."""
    for line in running_lines(pages).values():
        title = real_title(PAGE_NUMBER_EDGES.sub("", line))
        if title and len(WORDS.findall(title)) >= 2 and not NOT_A_TITLE.match(title):
            return title
    return None


def _line_key(line: str) -> str:
    return re.sub(r"\d+", "#", line.lower())


def _is_edge(index: int, lines: list[str]) -> bool:
    return index < 2 or index >= len(lines) - 2


def typical_line_length(lines: list[str]) -> int:
    """The length of a full line of body text: the 90th percentile of line lengths."""
    lengths = sorted(len(line) for line in lines)
    return lengths[int(0.9 * (len(lengths) - 1))] if lengths else 0


def page_elements(lines: list[str], page: int, width: int) -> list[Element]:
    """Group one page's lines into headings, list items and paragraphs."""
    elements: list[Element] = []
    kind: ElementKind = "text"  # the element being built ...
    parts: list[str] = []  # ... and its lines so far

    def flush() -> None:
        nonlocal parts
        if parts:
            elements.append(Element(text="".join(parts), kind=kind, page=page))
        parts = []

    for index, line in enumerate(lines):
        before = lines[index - 1] if index else None
        after = lines[index + 1] if index + 1 < len(lines) else None
        if is_heading(line, before, after, width):
            flush()
            elements.append(Element(text=line, kind="title", page=page))
            continue
        if SYMBOL_BULLET.match(line) or NUMBERED_ITEM.match(line):
            flush()
            kind, line = "list_item", SYMBOL_BULLET.sub("", line)
        elif not parts:
            kind = "text"
        if parts:  # so this is not the page's first line
            previous = lines[index - 1]
            parts.append("" if previous.endswith("-") else " " if _wrapped(previous, width) else "\n")
        parts.append(line)
        if not _wrapped(line, width) and (kind == "list_item" or ENDS_CLAUSE.search(line)):
            flush()
    flush()
    return elements


def is_heading(line: str, before: str | None, after: str | None, width: int) -> bool:
    """A short, title-like line after the end of a paragraph (or at the top of the page), followed by body text."""
    words = line.split()
    letters = sum(ch.isalpha() for ch in line)
    return (
        (before is None or (not _wrapped(before, width) and ENDS_CLAUSE.search(before) is not None))
        and after is not None
        and (_wrapped(after, width) or (len(after.split()) >= BODY_MIN_WORDS and ENDS_SENTENCE.search(after) is not None))
        and len(words) <= HEADING_MAX_WORDS
        and len(line) < HEADING_MAX_SHARE * width
        and line[-1] not in ".,;:!?-"
        and (line[0].isupper() or line[0].isdigit())
        and letters >= 0.6 * len(line.replace(" ", ""))
        and not SYMBOL_BULLET.match(line)
    )


def _wrapped(line: str, width: int) -> bool:
    return len(line) >= WRAPPED * width
