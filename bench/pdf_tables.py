"""Would pdfplumber's table extraction be worth it for kb's PDFs? Its tables, its cost and the page questions.

    .venv/bin/python bench/pdf_tables.py [--files FOLDER] [--questions FILE.jsonl] [--plumb /tmp/plumb]
        [--strategy lines text] [--json]

pdfplumber is not a kb dependency: install it to a side folder (`python -m pip install --target /tmp/plumb
pdfplumber`); --plumb is appended to sys.path, after the venv, so kb keeps its own pypdfium2.
Defaults: the 20 Docugami SEC 10-Q filings and bench/data/docugami_pages.jsonl (bench/docugami_pages.py).

Per PDF: kb's own parse (`kb.parsing.pdf.parse_pdf`, pypdfium2), timed; a cheap test on the text kb already
has for pages that look tabular (at least TABULAR_LINES lines with NUMERIC_CELLS or more numbers, "(1,234)",
"12.5", "$ 98,024" and "—" counting); pdfplumber's `extract_tables` on those pages only, per strategy
("lines": ruling lines, pdfplumber's default; "text": aligned words, for tables drawn without rules), timed
with opening the file, and the tables and rows (rows with a non-empty cell) it finds.
Page questions: for each {question, source, page, anchors} (anchors: the reference answer's figures that
stand on the gold page only), whether the gold page passes the tabular test, whether pdfplumber finds a
table there, whether an anchor figure stands in a table cell, and whether that cell's row also has a text
label (a cell with letters), i.e. whether the table tells which line item the figure belongs to.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BENCH, SHARED, save, table  # noqa: E402

DEFAULT_FILES = SHARED / "rag_qa" / "docugami_sec10q" / "data" / "v1" / "docs"
DEFAULT_QUESTIONS = BENCH / "data" / "docugami_pages.jsonl"
NUMBER_CELL = re.compile(r"^\$?\(?\$?\d[\d,]*(\.\d+)?\)?%?$|^[—–-]$")
NUMERIC_CELLS = 3  # numbers on a line for it to read like a table row ...
TABULAR_LINES = 5  # ... and such lines on a page for it to look tabular
LETTERS = re.compile(r"[^\W\d_]{2,}")


def numeric_tokens(line: str) -> int:
    return sum(1 for token in line.replace("$ ", "$").split() if NUMBER_CELL.match(token))


def looks_tabular(lines: list[str]) -> bool:
    return sum(1 for line in lines if numeric_tokens(line) >= NUMERIC_CELLS) >= TABULAR_LINES


def holds_figure(text: str, figure: str) -> bool:
    """The figure as a whole number in `text` (as bench/docugami_pages.py finds it on a page)."""
    return re.search(rf"(?<![\w.,]){re.escape(figure)}(?!\w|[.,]\d)", text) is not None


def page_lines(path: Path) -> list[list[str]]:
    from kb.parsing.pdf import read_pages

    return read_pages(path)[0]


def plumb_tables(path: Path, pages: list[int], strategy: str) -> tuple[dict[int, list[list[list[str]]]], float]:
    """{page (1-based): tables as rows of cells} for `pages`, and the seconds it took, opening included."""
    import pdfplumber

    settings = {"vertical_strategy": strategy, "horizontal_strategy": strategy}
    found: dict[int, list[list[list[str]]]] = {}
    started = time.perf_counter()
    with pdfplumber.open(str(path)) as pdf:
        for number in pages:
            page = pdf.pages[number - 1]
            tables = page.extract_tables(settings)
            found[number] = [[[" ".join((cell or "").split()) for cell in row] for row in t] for t in tables]
            page.close()  # frees its cached layout objects
    return found, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=Path, default=DEFAULT_FILES)
    parser.add_argument("--questions", type=Path, default=DEFAULT_QUESTIONS)
    parser.add_argument("--plumb", type=Path, default=Path("/tmp/plumb"), help="folder pdfplumber is installed in")
    parser.add_argument("--strategy", nargs="*", default=["lines", "text"], choices=["lines", "text"],
                        help="pdfplumber strategies to run (none: kb's side only)")
    parser.add_argument("--json", action="store_true", help="also save bench/results/pdf_tables.json")
    args = parser.parse_args()
    sys.path.append(str(args.plumb))
    from kb.parsing.pdf import parse_pdf

    pdfs = sorted(args.files.glob("*.pdf"))
    questions = [json.loads(line) for line in args.questions.read_text(encoding="utf-8").splitlines() if line.strip()]
    kb_seconds, pages_total = 0.0, 0
    tabular: dict[str, list[int]] = {}
    lines_of: dict[str, list[list[str]]] = {}
    for path in pdfs:
        started = time.perf_counter()
        parsed = parse_pdf(path)
        kb_seconds += time.perf_counter() - started
        pages_total += parsed.pages or 0
        lines_of[path.name] = page_lines(path)
        tabular[path.name] = [n for n, lines in enumerate(lines_of[path.name], 1) if looks_tabular(lines)]
    tabular_pages = sum(len(p) for p in tabular.values())
    print(f"{len(pdfs)} PDFs, {pages_total} pages; kb parse (pypdfium2) {kb_seconds:.2f} s; "
          f"{tabular_pages} pages look tabular (>= {TABULAR_LINES} lines with >= {NUMERIC_CELLS} numbers)")
    # What kb's own text already gives: a pypdfium2 line of the gold page with an anchor figure and words,
    # i.e. the line item and its figures on one line (a table row without its column headers).
    kb_labelled = sum(
        any(LETTERS.search(line) and any(holds_figure(line, f) for f in q["anchors"])
            for line in lines_of[q["source"]][q["page"] - 1])
        for q in questions
    )  # fmt: skip
    print(f"page questions: {len(questions)}; kb's text has an anchor figure on a line with words on the gold "
          f"page: {kb_labelled}")

    rows_out: list[list[Any]] = []
    results: dict[str, Any] = {"pdfs": len(pdfs), "pages": pages_total, "kb_parse_s": round(kb_seconds, 2),
                               "tabular_pages": tabular_pages, "questions": len(questions),
                               "kb_line_labelled": kb_labelled, "strategies": {}}  # fmt: skip
    for strategy in args.strategy:
        seconds, found = 0.0, {}
        for path in pdfs:
            tables, took = plumb_tables(path, tabular[path.name], strategy)
            seconds += took
            found[path.name] = tables
        n_tables = sum(len(t) for pages in found.values() for t in pages.values())
        n_rows = sum(sum(1 for row in t if any(row)) for pages in found.values() for ts in pages.values() for t in ts)
        pages_with = sum(1 for pages in found.values() for ts in pages.values() if ts)
        gold_tabular = in_table = in_cell = labelled = 0
        for q in questions:
            page = q["page"]
            if page not in tabular.get(q["source"], []):
                continue
            gold_tabular += 1
            tables = found[q["source"]].get(page, [])
            in_table += bool(tables)
            cells = [(cell, row) for t in tables for row in t for cell in row if cell]
            hits = [row for cell, row in cells if any(holds_figure(cell, f) for f in q["anchors"])]
            in_cell += bool(hits)
            labelled += any(any(LETTERS.search(c) for c in row) for row in hits)
        n = len(questions)
        print(f"\npdfplumber, strategy {strategy!r}: {seconds:.1f} s on the {tabular_pages} tabular pages "
              f"({seconds / max(tabular_pages, 1) * 1000:.0f} ms a page) = {seconds / max(kb_seconds, 1e-9):.1f}x "
              f"kb's whole parse; {n_tables} tables, {n_rows} rows, on {pages_with} pages")
        print(f"  page questions: {n}; gold page looks tabular {gold_tabular}; pdfplumber table on it {in_table}; "
              f"an anchor figure in a table cell {in_cell}; ... in a row with a text label {labelled}")
        rows_out.append([strategy, f"{seconds:.1f}", n_tables, n_rows, pages_with, f"{gold_tabular}/{n}",
                         f"{in_table}/{n}", f"{in_cell}/{n}", f"{labelled}/{n}"])
        results["strategies"][strategy] = {"seconds": round(seconds, 2), "tables": n_tables, "rows": n_rows,
                                           "pages_with_tables": pages_with, "questions": n,
                                           "gold_page_tabular": gold_tabular, "gold_page_table": in_table,
                                           "anchor_in_cell": in_cell, "anchor_row_labelled": labelled}  # fmt: skip
    if not rows_out:
        return
    print()
    print(table(["strategy", "seconds", "tables", "rows", "pages", "gold tabular", "gold table", "anchor in cell",
                 "labelled row"], rows_out))  # fmt: skip
    if args.json:
        print(f"wrote {save('pdf_tables', results)}")


if __name__ == "__main__":
    main()
