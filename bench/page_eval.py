"""Page-level retrieval on any folder of PDFs: does the passage kb shows come from the right page? Against
whole-page BM25, in one run.

    .venv/bin/python bench/page_eval.py [--files FOLDER] [--questions FILE.jsonl] [--name NAME] [--kb-eval]

Defaults: the 20 Docugami SEC 10-Q filings and bench/data/docugami_pages.jsonl (made by
bench/docugami_pages.py: questions whose gold page the reference answer's figures pin down).
Questions: one {"question", "source", "page"} per line; source is the file's path inside FOLDER (kb's
name for it), page 1-based, or null when only the document is known (document hits only). Other keys are
ignored.

kb: `kb ingest FOLDER` into a fresh KB_DATA_DIR, then all questions in ONE `kb search --batch FILE --json -k 10`
process. Over the first k results (passages, in kb's order), hit@k is the share of questions with a result...
- page (reported): from the right document whose `page` (what `kb search --json` reports: the page of the
  passage holding most of the query's matched words; its first page before passages knew their pages) is the
  gold page;
- page span: from the right document whose pages page_start..page_end hold the gold page. `kb search --json`
  has no page_end, and it cannot be told from chunk_id (doc:version:seq) or the text; it is read from the
  index itself after the search process exits, through kb's own `VectorIndex.fetch` (the stored payload:
  the same Chunk record the app shows as "pages X-Y");
- document: from the right document.
Baseline, same run: BM25 over whole pypdfium2 pages of every PDF in FOLDER (bench/qa_common.py); its results
are pages, so page and page span are the same thing. With --kb-eval, `kb eval QUESTIONS --files FOLDER --json`
(the library's evaluator: same ingest, page hits counted over the chunk's span) runs too, as a cross-check;
its page levels count a passage of ANY document whose span holds the gold page number (kb/evaluation.py
`_on_page` never compares the source), so the row "page span, any document" is printed to match it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BENCH, SHARED, save, table  # noqa: E402
from qa_common import KbRun, UnitBm25, mean, pdf_pages  # noqa: E402

DEFAULT_FILES = SHARED / "rag_qa" / "docugami_sec10q" / "data" / "v1" / "docs"
DEFAULT_QUESTIONS = BENCH / "data" / "docugami_pages.jsonl"
CUTOFFS = (1, 3, 5, 10)
SHOWN = 10


def load_questions(path: Path) -> list[dict[str, Any]]:
    questions = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        if not isinstance(row, dict) or "question" not in row or "source" not in row:
            raise SystemExit(f"{path} line {n} is not a JSON object with question, source (and page)")
        page = row.get("page")
        if page is not None and (not isinstance(page, int) or page < 1):
            raise SystemExit(f"{path} line {n}: page {page!r} is not a 1-based page number")
        questions.append({"id": str(row.get("id", f"line{n}")), "question": row["question"],
                          "source": str(row["source"]).strip("/"), "page": page})
    if not questions:
        raise SystemExit(f"{path} holds no question")
    return questions


def shares(questions: list[dict[str, Any]], matched: dict[str, list[bool]]) -> dict[str, Any]:
    """hit@k from, per question, whether each of its first results matches."""
    return {"questions": len(questions)} | {
        f"hit@{k}": mean(any(matched[q["id"]][:k]) for q in questions) for k in CUTOFFS
    }


def kb_eval(questions: Path, files: Path, run: KbRun) -> dict[str, Any]:
    """The library's own evaluator on the same files and questions (its own throw-away data folder)."""
    done = subprocess.run(run.command("eval", str(questions), "--files", str(files), "--json"),
                          capture_output=True, text=True, env=run.env(), cwd=run.work_dir)
    if done.returncode != 0:
        raise RuntimeError(f"kb eval failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=Path, default=DEFAULT_FILES, help="folder of PDFs")
    parser.add_argument("--questions", type=Path, default=DEFAULT_QUESTIONS, help="JSONL of {question, source, page}")
    parser.add_argument("--name", default="page_eval", help="results file name under bench/results/")
    parser.add_argument("--kb-eval", action="store_true", help="also run `kb eval` on the same set, as a cross-check")
    args = parser.parse_args()
    questions = load_questions(args.questions)
    paged = [q for q in questions if q["page"] is not None]
    pdfs = sorted(p for p in args.files.rglob("*") if p.is_file() and p.suffix.lower() == ".pdf")
    names = {p.relative_to(args.files).as_posix() for p in pdfs}
    unknown = sorted({q["source"] for q in questions} - names)
    if unknown:
        raise SystemExit(f"{args.questions} names {unknown[0]!r}, which is not a PDF in {args.files}")
    print(f"{len(questions)} questions ({len(paged)} with a page), {len(pdfs)} PDFs in {args.files}")

    run = KbRun("kb-pages-")
    try:
        ingest = run.ingest(args.files)
        print(f"kb ingest: {len(ingest.ok)} ok, {len(ingest.failed)} failed, {ingest.seconds} s")
        for name, reason in ingest.failed.items():
            print(f"  failed {name}: {reason}")
        results, search_s = run.search_batch([(q["id"], q["question"]) for q in questions], SHOWN)
        print(f"kb search --batch: {len(results)} queries, k={SHOWN}, {search_s} s (one process)")
        stored = run.stored_chunks(r["chunk_id"] for rows in results.values() for r in rows)
        cross_check = kb_eval(args.questions, args.files, run) if args.kb_eval else None
    finally:
        run.close()
    missing = {r["chunk_id"] for rows in results.values() for r in rows} - set(stored)
    if missing:
        raise SystemExit(f"{len(missing)} returned chunks are not in the index, e.g. {sorted(missing)[0]}")

    def span(r: dict[str, Any]) -> tuple[int | None, int | None]:
        chunk = stored[r["chunk_id"]]
        return chunk.page_start, chunk.page_end or chunk.page_start

    # The page kb reports lies inside the stored chunk's span, or the span is not the same chunk's.
    assert all(span(r)[0] is None or span(r)[0] <= r["page"] <= span(r)[1] for rows in results.values() for r in rows)

    kb_match = {
        "page (reported)": {q["id"]: [r["source"] == q["source"] and r["page"] == q["page"] for r in results[q["id"]]]
                            for q in paged},
        "page span": {q["id"]: [r["source"] == q["source"] and span(r)[0] is not None
                                and span(r)[0] <= q["page"] <= span(r)[1] for r in results[q["id"]]] for q in paged},
        "document": {q["id"]: [r["source"] == q["source"] for r in results[q["id"]]] for q in questions},
        # What kb eval's "page" level counts today (kb/evaluation.py _on_page): the span holds the gold page
        # number, whichever document the passage is from. Shown to explain the cross-check, not a measure.
        "page span, any document": {q["id"]: [span(r)[0] is not None and span(r)[0] <= q["page"] <= span(r)[1]
                                              for r in results[q["id"]]] for q in paged},
    }
    top5 = [stored[r["chunk_id"]] for rows in results.values() for r in rows[:5]]
    multi_page = mean((c.page_end or c.page_start) != c.page_start for c in top5 if c.page_start is not None)

    started = time.perf_counter()
    units = [((p.relative_to(args.files).as_posix(), n), text) for p in pdfs for n, text in enumerate(pdf_pages(p), 1)]
    bm25 = UnitBm25(units)
    base = {q["id"]: [key for key, _ in bm25.rank(q["question"], SHOWN)] for q in questions}
    base_s = time.perf_counter() - started
    print(f"baseline: {len(units)} pages, BM25 avg_len {bm25.avg_len:.0f} terms, {base_s:.1f} s (extraction included)")
    base_match = {
        "page": {q["id"]: [key == (q["source"], q["page"]) for key in base[q["id"]]] for q in paged},
        "document": {q["id"]: [key[0] == q["source"] for key in base[q["id"]]] for q in questions},
    }

    rows = {f"kb, {level}": shares(paged if level != "document" else questions, m) for level, m in kb_match.items()}
    rows |= {f"whole-page BM25, {level}": shares(paged if level != "document" else questions, m)
             for level, m in base_match.items()}
    print()
    print(table(["", "n"] + [f"hit@{k}" for k in CUTOFFS],
                [[label, r["questions"]] + [f"{r[f'hit@{k}']:.3f}" for k in CUTOFFS] for label, r in rows.items()]))
    print(f"\nof kb's top-5 passages, {multi_page:.3f} span more than one page")
    if cross_check:
        hits = cross_check["hits"]
        print("kb eval QUESTIONS --files FOLDER, same questions: " + "; ".join(
            f"{level} hit@1 {h['hit@1']:.3f} hit@5 {h['hit@5']:.3f}" for level, h in hits.items()))
        print("  (kb eval's page levels do not check the document: compare with 'kb, page span, any document')")

    path = save(args.name, {
        "command": "bench/page_eval.py", "files": str(args.files), "questions_file": str(args.questions),
        "questions": len(questions), "with_page": len(paged), "pdfs": len(pdfs), "pages": len(units),
        "ingest": {"ok": len(ingest.ok), "failed": ingest.failed, "seconds": ingest.seconds},
        "kb_search_seconds": search_s, "hits": rows, "kb_top5_multi_page_share": multi_page,
        "kb_eval_cross_check": cross_check and cross_check["hits"],
        "per_question": [{"id": q["id"], "source": q["source"], "page": q["page"],
                          "kb": [[r["source"], *span(r)] for r in results[q["id"]][:5]],
                          "baseline": [list(key) for key in base[q["id"]][:5]]} for q in questions],
    })
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
