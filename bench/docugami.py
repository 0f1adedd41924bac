"""Document retrieval on Docugami's SEC 10-Q set: does the right filing come first? kb against whole-page BM25.

    .venv/bin/python bench/docugami.py [--data ../shared/data/rag_qa/docugami_sec10q/data/v1]

20 quarterly filings (AAPL, AMZN, INTC, MSFT, NVDA; 2022 Q3 to 2023 Q3) and 195 human-reviewed questions
(qna_data.csv). Each question names its source documents with a pattern: `*2023 Q3 AAPL*` is one filing,
`*AAPL*` all four AAPL filings (exactly the 65 "Multi-Doc RAG" questions). A document matches when its file
name matches the pattern (fnmatch, case-sensitive).

kb: `kb ingest` of the 20 PDFs into a fresh KB_DATA_DIR, then all 195 questions in ONE
`kb search --batch FILE --json -k 100` process (offline defaults: BM25 over ~300-word chunks).
Baseline, same run: BM25 over whole PDF pages (pypdfium2 text, kb's analyzer; bench/qa_common.py).

Two ways to count "document hit@k", both reported for both systems:
- documents: the documents ranked by their best passage (kb) or best page (baseline); hit@k = the first
  k distinct documents hold an expected one. This is the like-for-like comparison, and the headline.
- results: the first k results as returned (passages for kb, pages for the baseline); hit@k = one of
  them comes from an expected document. What a user sees in a top-k list.
For a question with several expected documents "any" needs one of them, "all" needs every one within the
first k (so "all" hit@1 and hit@3 are 0 by construction for a four-filing pattern). A single-document
question scores the same either way; overall "any" and "all" mix both kinds.
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED, save, table  # noqa: E402
from qa_common import KbRun, UnitBm25, hit, mean, pdf_pages, unique_in_order  # noqa: E402

DEFAULT_DATA = SHARED / "rag_qa" / "docugami_sec10q" / "data" / "v1"
CUTOFFS = (1, 3, 5, 10)
FETCH = 100  # passages asked of kb per question: enough for 10 distinct documents


@dataclass(frozen=True)
class Question:
    qid: str
    question: str
    pattern: str
    kind: str  # "Single-Doc Single-Chunk RAG" | "Single-Doc Multi-Chunk RAG" | "Multi-Doc RAG"
    chunk_type: str  # "Text" | "Table"
    answer: str
    expected: frozenset[str]  # document names the pattern matches

    @property
    def scope(self) -> str:
        return "multi" if self.kind.startswith("Multi") else "single"


def load_questions(data: Path, documents: list[str]) -> list[Question]:
    questions = []
    with (data / "qna_data.csv").open(encoding="utf-8-sig", newline="") as rows:
        for n, row in enumerate(csv.DictReader(rows)):
            pattern = row["Source Docs"].strip()
            expected = frozenset(d for d in documents if fnmatch.fnmatchcase(d, pattern))
            if not expected:
                raise SystemExit(f"question {n}: pattern {pattern!r} matches no file in {data / 'docs'}")
            questions.append(Question(
                f"q{n:03d}", row["Question"].strip(), pattern, row["Question Type"].strip(),
                row["Source Chunk Type"].strip(), row["Answer"], expected,
            ))
    return questions


def hits_row(questions: list[Question], ranked: dict[str, list[str]], need_all: bool) -> dict[str, Any]:
    return {"questions": len(questions)} | {
        f"hit@{k}": mean(hit(ranked[q.qid], set(q.expected), k, need_all) for q in questions) for k in CUTOFFS
    }


def breakdown(questions: list[Question], ranked: dict[str, list[str]]) -> dict[str, dict[str, Any]]:
    """hit@k overall ("any", "all"), by chunk type, by single/multi and by the dataset's three question types."""
    groups: dict[str, tuple[list[Question], bool]] = {
        "all questions, any": (questions, False),
        "all questions, all": (questions, True),
    }
    for chunk_type in ("Text", "Table"):
        groups[f"chunk {chunk_type.lower()}, any"] = ([q for q in questions if q.chunk_type == chunk_type], False)
    groups["single-doc"] = ([q for q in questions if q.scope == "single"], False)
    groups["multi-doc, any"] = ([q for q in questions if q.scope == "multi"], False)
    groups["multi-doc, all"] = ([q for q in questions if q.scope == "multi"], True)
    for kind in ("Single-Doc Single-Chunk RAG", "Single-Doc Multi-Chunk RAG", "Multi-Doc RAG"):
        groups[f"{kind}, any"] = ([q for q in questions if q.kind == kind], False)
    return {name: hits_row(qs, ranked, need_all) for name, (qs, need_all) in groups.items() if qs}


def repeat_spread(questions: list[Question], runs: list[dict[str, list[dict[str, Any]]]]) -> dict[str, dict[str, str]]:
    """min-max of the headline hit@k over several fresh builds."""
    values: dict[str, dict[str, list[float]]] = {"documents": {}, "results": {}}
    for results in runs:
        passages = {qid: [r["source"] for r in rows] for qid, rows in results.items()}
        documents = {qid: unique_in_order(p) for qid, p in passages.items()}
        for level, ranked in (("documents", documents), ("results", passages)):
            row = hits_row(questions, ranked, False)
            for k in CUTOFFS:
                values[level].setdefault(f"hit@{k}", []).append(row[f"hit@{k}"])
    return {level: {name: f"{min(v):.3f}-{max(v):.3f}" for name, v in by_k.items()} for level, by_k in values.items()}


def baseline_variants(
    questions: list[Question], documents: list[str], docs_dir: Path, units: list[tuple[tuple[str, int], str]]
) -> dict[str, dict[str, dict[str, Any]]]:
    """The page baseline changed one thing at a time: Qdrant's default avg_len, pages as kb reads them
    (kb.parsing.pdf: running headers and footers dropped), the file name written at the top of every page."""
    from kb.parsing.pdf import drop_running_lines, read_document

    kb_pages = []
    for name in documents:
        lines, _, _ = read_document(docs_dir / name)
        kb_pages += [((name, n), "\n".join(page)) for n, page in enumerate(drop_running_lines(lines), 1)]
    named = [((name, n), f"{Path(name).stem}\n{text}") for (name, n), text in units]
    out = {}
    for label, variant_units, avg_len in (
        ("avg_len 256 (Qdrant default)", units, 256.0),
        ("pages as kb reads them", kb_pages, None),
        ("file name on every page", named, None),
    ):
        bm25 = UnitBm25(variant_units, avg_len=avg_len)
        pages = {q.qid: [key[0] for key, _ in bm25.rank(q.question, FETCH)] for q in questions}
        docs = {qid: unique_in_order(p) for qid, p in pages.items()}
        out[label] = {"documents": hits_row(questions, docs, False), "pages": hits_row(questions, pages, False)}
    return out


def print_table(title: str, rows: dict[str, dict[str, Any]]) -> None:
    print(f"\n{title}")
    print(table(["", "n"] + [f"hit@{k}" for k in CUTOFFS],
                [[name, r["questions"]] + [f"{r[f'hit@{k}']:.3f}" for k in CUTOFFS] for name, r in rows.items()]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the v1 folder (qna_data.csv, docs/)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="build the kb side this many times from scratch and report the spread (ties)")
    parser.add_argument("--variants", action="store_true",
                        help="also score a few variants of the page baseline (how sensitive it is)")
    args = parser.parse_args()
    docs_dir = args.data / "docs"
    documents = sorted(p.name for p in docs_dir.glob("*.pdf"))
    questions = load_questions(args.data, documents)
    print(f"{len(questions)} questions, {len(documents)} PDFs in {docs_dir}")

    runs = []  # (ingest, results, seconds) per fresh knowledge base
    for repeat in range(args.repeats):
        run = KbRun("kb-docugami-")
        try:
            ingest = run.ingest(docs_dir)
            print(f"kb ingest: {len(ingest.ok)} ok, {len(ingest.failed)} failed, {ingest.seconds} s")
            for name, reason in ingest.failed.items():
                print(f"  failed {name}: {reason}")
            results, search_s = run.search_batch([(q.qid, q.question) for q in questions], FETCH)
            print(f"kb search --batch: {len(results)} queries, k={FETCH}, {search_s} s (one process, index opening included)")
        finally:
            run.close()
        runs.append((ingest, results, search_s))
    ingest, results, search_s = runs[0]
    kb_results = {qid: [r["source"] for r in rows] for qid, rows in results.items()}
    kb_documents = {qid: unique_in_order(sources) for qid, sources in kb_results.items()}
    spread = repeat_spread(questions, [r for _, r, _ in runs]) if len(runs) > 1 else {}

    started = time.perf_counter()
    units = [((name, n), text) for name in documents for n, text in enumerate(pdf_pages(docs_dir / name), 1)]
    extract_s = time.perf_counter() - started
    started = time.perf_counter()
    bm25 = UnitBm25(units)
    base_pages = {q.qid: [key[0] for key, _ in bm25.rank(q.question, FETCH)] for q in questions}
    base_s = time.perf_counter() - started
    base_documents = {qid: unique_in_order(sources) for qid, sources in base_pages.items()}
    print(f"baseline: {len(units)} pages (pypdfium2, {extract_s:.1f} s), BM25 avg_len {bm25.avg_len:.0f} terms, "
          f"index + 195 queries {base_s:.1f} s")

    report = {
        "kb documents (by best passage)": breakdown(questions, kb_documents),
        "baseline documents (by best page)": breakdown(questions, base_documents),
        "kb results (first k passages)": breakdown(questions, kb_results),
        "baseline results (first k pages)": breakdown(questions, base_pages),
    }
    for title, rows in report.items():
        print_table(title, rows)

    any_row = "all questions, any"
    headline = [
        [f"hit@{k}"] + [report[name][any_row][f"hit@{k}"] for name in report] for k in CUTOFFS
    ]
    print("\nheadline: document hit@k, all 195 questions, any expected document "
          "(target later: hit@1 >= 0.50, hit@5 >= 0.85)")
    print(table(["", "kb, documents", "BM25 pages, documents", "kb, first k passages", "BM25, first k pages"], headline))

    if spread:
        print(f"\nkb over {len(runs)} fresh ingests of the same files (all questions, any): min-max; the tables above are "
              "the first. Equal scores (the same boilerplate passage in several filings) come back in a different order")
        print(table(["", "documents", "first k passages"],
                    [[f"hit@{k}", spread["documents"][f"hit@{k}"], spread["results"][f"hit@{k}"]] for k in CUTOFFS]))

    variants = baseline_variants(questions, documents, docs_dir, units) if args.variants else {}
    if variants:
        print("\nbaseline variants (documents by best page / first k pages), any expected document")
        print(table(["", "docs hit@1", "docs hit@5", "pages hit@1", "pages hit@5"],
                    [[name, v["documents"]["hit@1"], v["documents"]["hit@5"], v["pages"]["hit@1"], v["pages"]["hit@5"]]
                     for name, v in variants.items()]))

    per_question = [
        {"id": q.qid, "question": q.question, "pattern": q.pattern, "type": q.kind, "chunk_type": q.chunk_type,
         "expected": sorted(q.expected), "kb_documents": kb_documents[q.qid][:10],
         "baseline_documents": base_documents[q.qid][:10]}
        for q in questions
    ]
    path = save("docugami", {
        "command": "bench/docugami.py", "data": str(args.data), "questions": len(questions),
        "documents": len(documents), "pages": len(units),
        "ingest": {"ok": len(ingest.ok), "failed": ingest.failed, "seconds": ingest.seconds},
        "kb_search_seconds": search_s, "kb_repeats": len(runs), "kb_repeat_spread": spread, "baseline_seconds": round(base_s, 1),
        "baseline": {"unit": "whole PDF page (pypdfium2 get_text_bounded)", "bm25_avg_len": round(bm25.avg_len, 1),
                     "scoring": "kb's Bm25Encoder (qdrant_edge.Bm25, k1 1.2, b 0.75) x Qdrant IDF"},
        "hits": report, "baseline_variants": variants, "per_question": per_question,
    })
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
