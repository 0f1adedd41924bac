"""Build a page-level question set from Docugami's SEC 10-Q questions: gold pages found by the answer's figures.

    .venv/bin/python bench/docugami_pages.py [--data ../shared/data/rag_qa/docugami_sec10q/data/v1]
        [--out bench/data/docugami_pages.jsonl]

The dataset names each question's filing but not its page. For the single-filing questions (130 of 195),
the reference answer's figures locate it:
- figures: the distinct numbers in the reference answer (before its "SOURCE(S)" line) with at least three
  digits ("22,308", "12.5", "1,635"); years (1900-2099) are left out;
- a page holds a figure when the figure occurs in its pypdfium2 text as a whole number (not inside a
  longer one); pages are numbered from 1 in file order, as kb numbers them;
- gold page P when (1) at least one figure occurs on exactly one page of the filing, and every such
  single-page figure is on P, and (2) P holds more of the answer's figures than any other page.
Every other question is left out, and the counts say why. Text-only answers ("the effective tax rate
was 18%", "did not provide a direct comparison") have no such figure: the set leans to table questions.
Each line: {"id", "question", "source", "page", "chunk_type", "type", "figures", "anchors"}; `anchors` are
the single-page figures, so every gold page can be checked by hand against the PDF.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BENCH  # noqa: E402
from docugami import DEFAULT_DATA, load_questions  # noqa: E402
from qa_common import pdf_pages  # noqa: E402

DEFAULT_OUT = BENCH / "data" / "docugami_pages.jsonl"
NUMBER = re.compile(r"(?<![\w.,])(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+\.\d+|\d+)(?!\w|[.,]\d)")
YEAR = re.compile(r"(19|20)\d\d")


def figures(text: str) -> set[str]:
    """Numbers of three digits or more, years excepted, as written ("1,635", "12.5")."""
    found = set()
    for match in NUMBER.finditer(text):
        number = match.group(1)
        if sum(ch.isdigit() for ch in number) >= 3 and not YEAR.fullmatch(number):
            found.add(number)
    return found


def gold_page(answer_figures: set[str], page_figures: list[set[str]]) -> tuple[int | None, str, dict[str, list[int]]]:
    """(page or None, why, {figure: pages holding it}) by the rule in the module docstring."""
    where = {f: [n for n, held in enumerate(page_figures, 1) if f in held] for f in sorted(answer_figures)}
    if not answer_figures:
        return None, "no figure in the answer", where
    counts = Counter(n for pages in where.values() for n in pages)
    if not counts:
        return None, "no figure of the answer in the filing", where
    anchors = {pages[0] for pages in where.values() if len(pages) == 1}
    if not anchors:
        return None, "every figure is on several pages", where
    if len(anchors) > 1:
        return None, "single-page figures on different pages", where
    (page,) = anchors
    if any(c >= counts[page] for n, c in counts.items() if n != page):
        return None, "another page holds as many figures", where
    return page, "unique", where


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    docs_dir = args.data / "docs"
    documents = sorted(p.name for p in docs_dir.glob("*.pdf"))
    questions = load_questions(args.data, documents)
    page_figures = {name: [figures(text) for text in pdf_pages(docs_dir / name)] for name in documents}

    outcomes: Counter[str] = Counter()
    by_type: Counter[str] = Counter()
    rows = []
    for q in questions:
        if len(q.expected) != 1:
            outcomes["several filings (multi-doc)"] += 1
            continue
        (source,) = q.expected
        answer = q.answer.split("SOURCE(S)")[0]
        page, why, where = gold_page(figures(answer), page_figures[source])
        outcomes[why] += 1
        if page is None:
            continue
        by_type[q.chunk_type] += 1
        rows.append({
            "id": q.qid, "question": q.question, "source": source, "page": page, "chunk_type": q.chunk_type,
            "type": q.kind, "figures": where, "anchors": sorted(f for f, pages in where.items() if pages == [page]),
        })
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    print(f"{len(questions)} questions; outcome of the gold-page search:")
    for why, count in outcomes.most_common():
        print(f"  {count:4d}  {why}")
    print(f"{len(rows)} questions with a unique gold page ({dict(by_type)}) written to {args.out}")


if __name__ == "__main__":
    main()
