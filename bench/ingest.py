"""Ingest throughput: `kb ingest` against the pipeline a LangChain user would write, on the same files, in one run.

    bench/setup_baseline.sh                 # once: the baseline's own venv (torch, unstructured[pdf])
    .venv/bin/python bench/ingest.py [--folders unstructured,azure_demo_testdata,pypdf_sample_files]

Files: the PDFs and Office files (docx, pptx, xlsx) of those folders of ../shared/data/ingestion
(the malformed/ and pypdf_resources/ torture sets are left out: they measure refusal, not throughput).

kb: the product's path in a temporary data folder (store the original, parse in a child process,
chunk, BM25, index in the embedded engine), i.e. `kb ingest FOLDER`.
Baseline (bench/.venv-baseline, run as a subprocess): langchain-unstructured's UnstructuredLoader with
strategy="fast", RecursiveCharacterTextSplitter(1000, 200), and QdrantVectorStore on qdrant-client local
mode. Offline, unstructured cannot fetch its spaCy model and most files come out empty; the baseline
gets a blank spaCy pipeline instead (and is also run as written, to show that). Its vectors come from
langchain-core's DeterministicFakeEmbedding (no model cost), since a real model would cost both sides
the same; kb computes BM25 vectors, its default. Both choices favour the baseline.

Also: PDF text extraction alone, pypdfium2 (what kb uses) against unstructured's fast strategy
(pdfminer), on the same PDFs: pages/s and how much of the same text they find (word-bag F1).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BENCH, SHARED, run_json, save, table  # noqa: E402

KINDS = (".pdf", ".docx", ".pptx", ".xlsx")
BASELINE_PYTHON = BENCH / ".venv-baseline" / "bin" / "python"


def select_files(folders: list[str]) -> list[Path]:
    files = []
    for folder in folders:
        files += [p for p in sorted((SHARED / "ingestion" / folder).rglob("*")) if p.suffix.lower() in KINDS and p.is_file()]
    return files


def run_kb(files: list[Path]) -> dict:
    from kb.auth import LOCAL_ADMIN
    from kb.config import load_settings
    from kb.service import KnowledgeBase

    staging = Path(tempfile.mkdtemp(prefix="kb-bench-files-"))
    data = Path(tempfile.mkdtemp(prefix="kb-bench-data-"))
    try:
        for n, path in enumerate(files):  # one flat folder: names must not collide
            shutil.copy(path, staging / f"{n:03d}-{path.name}")
        settings = load_settings().replace(data_dir=data, qdrant_url="", embedding="")
        kb = KnowledgeBase(settings)
        try:
            started = time.perf_counter()
            submitted = kb.submit_paths([staging])
            kb.work_queue()
            seconds = time.perf_counter() - started
            jobs = kb.catalog.jobs([s.job_id for s in submitted])
            documents = {d.name: d for d in kb.documents(actor=LOCAL_ADMIN)}
        finally:
            kb.close()
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(data, ignore_errors=True)
    ok = [job for job in jobs if job.outcome == "ok"]
    return {
        "seconds": round(seconds, 2), "files": len(jobs), "ok": len(ok),
        "pages": sum(documents[j.name].pages or 0 for j in ok if j.name in documents),
        "chunks": sum(documents[j.name].chunks for j in ok if j.name in documents),
        "failed": {j.name: j.message for j in jobs if j.outcome != "ok"},
    }


def pdf_texts_kb(pdfs: list[Path]) -> dict:
    from kb.parsing.pdf import parse_pdf

    texts, pages, started = {}, 0, time.perf_counter()
    for path in pdfs:
        try:
            parsed = parse_pdf(path)
        except Exception:  # noqa: BLE001 - a benchmark counts failures, it does not stop on them
            texts[str(path)] = None
            continue
        pages += parsed.pages or 0
        texts[str(path)] = "\n".join(e.text for e in parsed.elements)
    return {"seconds": round(time.perf_counter() - started, 2), "pages": pages, "texts": texts}


def page_count(pdf: Path) -> int:
    """Pages as the file declares them (0 when it cannot be opened): the one page count both sides are divided by."""
    import pypdfium2

    try:
        document = pypdfium2.PdfDocument(str(pdf))
    except Exception:  # noqa: BLE001 - encrypted or broken
        return 0
    try:
        return len(document)
    finally:
        document.close()


def word_f1(a: str, b: str) -> float:
    """How much the same words two extractions found (multiset F1, case and punctuation ignored)."""
    words_a, words_b = (Counter(re.findall(r"\w+", t.lower())) for t in (a, b))
    common = sum((words_a & words_b).values())
    if not common:
        return 0.0 if (words_a or words_b) else 1.0
    precision, recall = common / sum(words_b.values()), common / sum(words_a.values())
    return 2 * precision * recall / (precision + recall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folders", default="unstructured,azure_demo_testdata,pypdf_sample_files")
    args = parser.parse_args()
    files = select_files(args.folders.split(","))
    pdfs = [f for f in files if f.suffix.lower() == ".pdf"]
    megabytes = sum(f.stat().st_size for f in files) / 2**20
    pdf_pages = sum(page_count(p) for p in pdfs)
    if not BASELINE_PYTHON.exists():
        sys.exit("bench/.venv-baseline is missing: run bench/setup_baseline.sh first")
    print(f"{len(files)} files ({len(pdfs)} PDFs), {megabytes:.1f} MB", file=sys.stderr)

    kb = run_kb(files)
    print(f"kb: {kb['seconds']} s", file=sys.stderr, flush=True)
    baseline = run_json([str(BASELINE_PYTHON), str(BENCH / "baseline_langchain.py"), "ingest", *map(str, files)])
    print(f"baseline: {baseline['seconds']} s", file=sys.stderr, flush=True)
    as_written = run_json([str(BASELINE_PYTHON), str(BENCH / "baseline_langchain.py"), "ingest", *map(str, files)],
                          env={**os.environ, "BASELINE_AS_WRITTEN": "1"})
    kb_pdf = pdf_texts_kb(pdfs)
    fast_pdf = run_json([str(BASELINE_PYTHON), str(BENCH / "baseline_langchain.py"), "pdf-text", *map(str, pdfs)])

    rows = []
    for name, r in (("kb ingest", kb), ("LangChain + unstructured fast + qdrant local", baseline),
                    ("the same, as written (spaCy model not fetchable offline)", as_written)):
        rows.append([name, r["files"], r["ok"], r["chunks"], r["seconds"],
                     round(pdf_pages / r["seconds"], 1), round(megabytes / r["seconds"], 2)])
    print(f"pages/s: the {pdf_pages} pages the PDFs declare, over each pipeline's time for all {len(files)} files")
    print(table(["pipeline", "files", "ok", "chunks", "seconds", "PDF pages/s", "MB/s"], rows))
    print(f"kb is {baseline['seconds'] / kb['seconds']:.1f}x the baseline's speed (wall time, same files)\n")

    both = [p for p in map(str, pdfs) if kb_pdf["texts"].get(p) and fast_pdf["texts"].get(p)]
    f1 = [word_f1(fast_pdf["texts"][p], kb_pdf["texts"][p]) for p in both]
    only_kb = sum(1 for p in map(str, pdfs) if kb_pdf["texts"].get(p) and not fast_pdf["texts"].get(p))
    only_fast = sum(1 for p in map(str, pdfs) if fast_pdf["texts"].get(p) and not kb_pdf["texts"].get(p))
    pdf_rows = [
        ["pypdfium2 (kb)", kb_pdf["pages"], kb_pdf["seconds"], round(pdf_pages / kb_pdf["seconds"], 1)],
        ["unstructured fast (pdfminer)", fast_pdf["pages"], fast_pdf["seconds"], round(pdf_pages / fast_pdf["seconds"], 1)],
    ]
    print(table(["PDF text", "pages with text", "seconds", "pages/s"], pdf_rows))
    print(f"pypdfium2 is {fast_pdf['seconds'] / kb_pdf['seconds']:.1f}x as fast")
    summary = {
        "pdfs_with_text_in_both": len(both), "text_only_kb": only_kb, "text_only_fast": only_fast,
        "word_f1_median": round(sorted(f1)[len(f1) // 2], 3) if f1 else None,
        "word_f1_mean": round(sum(f1) / len(f1), 3) if f1 else None,
        "pdfs_with_f1_below_0.9": sum(1 for v in f1 if v < 0.9),
    }
    print(f"same text? word-bag F1 over {len(both)} PDFs both read: median {summary['word_f1_median']}, "
          f"mean {summary['word_f1_mean']}, {summary['pdfs_with_f1_below_0.9']} below 0.9; "
          f"text only from pypdfium2: {only_kb}, only from fast: {only_fast}")
    kb_pdf.pop("texts"), fast_pdf.pop("texts")
    path = save("ingest", {
        "command": " ".join(["bench/ingest.py", *sys.argv[1:]]), "files": len(files), "megabytes": round(megabytes, 2),
        "pdfs": len(pdfs), "pdf_pages": pdf_pages,
        "kb": kb, "baseline": baseline, "baseline_as_written": as_written, "speedup": round(baseline["seconds"] / kb["seconds"], 2),
        "pdf_text": {"pypdfium2": kb_pdf, "unstructured_fast": fast_pdf, **summary},
    })
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
