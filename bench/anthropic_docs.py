"""Chunk retrieval on Anthropic's documentation RAG set: kb against whole-document BM25, in one run.

    .venv/bin/python bench/anthropic_docs.py [--data ../shared/data/rag_qa/anthropic_docs_rag]

anthropic_docs.json holds 232 chunks of product documentation ({chunk_link, chunk_heading, text});
docs_evaluation_dataset.json 100 questions, each with 1-4 correct chunks (by chunk_link).

Each chunk becomes one Markdown file, named by its link: the part after https://docs.claude.com/ with "/"
written as "__" and "#" as "--", plus ".md" (so en/docs/welcome#get-started -> en__docs__welcome--get-started.md,
and back). The file is "# {chunk_heading}", a blank line, then the chunk's text without its first line
(every text opens with its heading). kb: `kb ingest` of that folder into a fresh KB_DATA_DIR, then the 100
questions in ONE `kb search --batch FILE --json -k 50` process. Files kb refuses are counted and named.
Baseline, same run: BM25 over the same 232 files' texts, one unit per file (bench/qa_common.py).

recall@k: the share of a question's correct chunks among the first k, averaged over the questions; MRR@10:
1 / rank of the first correct chunk within the first 10 (0 if none). Counted two ways, as in docugami.py:
"documents" ranks the files by their best passage (kb) - the like-for-like comparison with the baseline,
whose units are the files; "results" takes the first k passages as kb returns them (a long file can fill
several places). recall@3 and MRR@3 are printed too: the published baseline (a commercial embedding model,
three chunks retrieved) scored recall 0.66, MRR 0.74.
A question whose correct chunk failed to ingest keeps it in the denominator (kb cannot find it).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED, save, table  # noqa: E402
from qa_common import KbRun, UnitBm25, mean, unique_in_order  # noqa: E402

DEFAULT_DATA = SHARED / "rag_qa" / "anthropic_docs_rag"
PREFIX = "https://docs.claude.com/"
CUTOFFS = (3, 5, 10)
FETCH = 50  # passages asked of kb per question: enough for 10 distinct files


def file_name(link: str) -> str:
    """The Markdown file's name for a chunk link (reversible by link_of)."""
    if not link.startswith(PREFIX):
        raise SystemExit(f"unexpected chunk link {link!r}")
    return link[len(PREFIX):].replace("/", "__").replace("#", "--") + ".md"


def link_of(name: str) -> str:
    return PREFIX + name.removesuffix(".md").replace("--", "#", 1).replace("__", "/")


def markdown(chunk: dict[str, str]) -> str:
    heading, text = chunk["chunk_heading"].strip(), chunk["text"]
    body = text[len(heading):].lstrip() if text.startswith(heading) else text
    return f"# {heading}\n\n{body}\n"


def scores(questions: list[dict[str, Any]], ranked: dict[str, list[str]]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for k in CUTOFFS:
        out[f"recall@{k}"] = mean(
            len(set(q["correct_chunks"]) & set(ranked[q["id"]][:k])) / len(set(q["correct_chunks"])) for q in questions
        )
    for k in (3, 10):
        out[f"mrr@{k}"] = mean(_reciprocal(ranked[q["id"]][:k], set(q["correct_chunks"])) for q in questions)
    return out


def _reciprocal(ranked: list[str], correct: set[str]) -> float:
    return next((1 / rank for rank, link in enumerate(ranked, 1) if link in correct), 0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--variants", action="store_true",
                        help="also score a few variants of the whole-document baseline (how sensitive it is)")
    args = parser.parse_args()
    chunks = json.loads((args.data / "anthropic_docs.json").read_text(encoding="utf-8"))
    questions = json.loads((args.data / "docs_evaluation_dataset.json").read_text(encoding="utf-8"))
    links = {c["chunk_link"] for c in chunks}
    assert all(c in links for q in questions for c in q["correct_chunks"]), "a correct chunk is not in the corpus"

    folder = Path(tempfile.mkdtemp(prefix="kb-anthropic-md-"))
    texts = {}
    for chunk in chunks:
        name = file_name(chunk["chunk_link"])
        assert link_of(name) == chunk["chunk_link"] and len(name) <= 255, name
        texts[chunk["chunk_link"]] = markdown(chunk)
        (folder / name).write_text(texts[chunk["chunk_link"]], encoding="utf-8")
    print(f"{len(chunks)} chunks written as Markdown files to {folder}; {len(questions)} questions")

    run = KbRun("kb-anthropic-")
    try:
        ingest = run.ingest(folder)
        print(f"kb ingest: {len(ingest.ok)} ok, {len(ingest.failed)} failed, {ingest.seconds} s")
        reasons: dict[str, int] = {}
        for reason in ingest.failed.values():
            reasons[reason] = reasons.get(reason, 0) + 1
        for reason, count in sorted(reasons.items(), key=lambda item: -item[1]):
            print(f"  {count} failed: {reason}")
        for name in sorted(ingest.failed):
            print(f"    {name}")
        results, search_s = run.search_batch([(q["id"], q["question"]) for q in questions], FETCH)
        print(f"kb search --batch: {len(results)} queries, k={FETCH}, {search_s} s (one process, index opening included)")
    finally:
        run.close()
        shutil.rmtree(folder, ignore_errors=True)
    failed_links = {link_of(name) for name in ingest.failed}
    affected = [q["id"] for q in questions if failed_links & set(q["correct_chunks"])]
    kb_results = {qid: [link_of(r["source"]) for r in rows] for qid, rows in results.items()}
    kb_documents = {qid: unique_in_order(ranked) for qid, ranked in kb_results.items()}

    started = time.perf_counter()
    bm25 = UnitBm25([(link, texts[link]) for link in sorted(texts)])
    base = {q["id"]: [link for link, _ in bm25.rank(q["question"], FETCH)] for q in questions}
    base_s = time.perf_counter() - started
    print(f"baseline: {len(texts)} whole documents, BM25 avg_len {bm25.avg_len:.0f} terms, index + queries {base_s:.2f} s")

    rows = {
        "kb, documents (files by best passage)": scores(questions, kb_documents),
        "kb, results (first k passages)": scores(questions, kb_results),
        "whole-document BM25": scores(questions, base),
    }
    kb_ok = [q for q in questions if q["id"] not in affected]
    if affected:
        rows[f"kb, documents, the {len(kb_ok)} questions whose chunks all ingested"] = scores(kb_ok, kb_documents)
        rows[f"whole-document BM25, the same {len(kb_ok)} questions"] = scores(kb_ok, base)
    if args.variants:
        by_link = {c["chunk_link"]: c for c in chunks}
        for label, text, avg_len in (
            ("BM25 variant: avg_len 256 (Qdrant default)", lambda c: texts[c["chunk_link"]], 256.0),
            ("BM25 variant: heading + full text (heading twice)", lambda c: c["chunk_heading"] + "\n" + c["text"], None),
            ("BM25 variant: link words + text", lambda c: re.sub(r"[/#:.-]+", " ", c["chunk_link"]) + "\n" + c["text"], None),
        ):
            variant = UnitBm25([(link, text(by_link[link])) for link in sorted(by_link)], avg_len=avg_len)
            rows[label] = scores(questions, {q["id"]: [l for l, _ in variant.rank(q["question"], FETCH)] for q in questions})
    names = list(next(iter(rows.values())))
    print()
    print(table([""] + names, [[label] + [f"{v:.3f}" for v in r.values()] for label, r in rows.items()]))
    print(f"\n{len(ingest.failed)} of {len(chunks)} files failed to ingest; {len(affected)} of {len(questions)} "
          "questions have a correct chunk among them. Target later: recall@5 >= 0.75.")

    path = save("anthropic_docs", {
        "command": "bench/anthropic_docs.py", "data": str(args.data), "chunks": len(chunks), "questions": len(questions),
        "ingest": {"ok": len(ingest.ok), "failed": ingest.failed, "failure_reasons": reasons, "seconds": ingest.seconds},
        "questions_with_a_failed_chunk": affected, "kb_search_seconds": search_s,
        "baseline": {"unit": "whole file text", "bm25_avg_len": round(bm25.avg_len, 1)},
        "scores": rows,
        "per_question": [{"id": q["id"], "correct": q["correct_chunks"], "kb_documents": kb_documents[q["id"]][:10],
                          "baseline": base[q["id"]][:10]} for q in questions],
    })
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
