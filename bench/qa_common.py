"""What the retrieval-quality benchmarks share: the product's real path (`kb ingest`, then one
`kb search --batch` process per question set), a whole-page / whole-document BM25 baseline, and scoring.

The kb side runs the `kb` command of this interpreter's venv in a fresh KB_DATA_DIR, with every other KB_*
and OPENAI_* variable removed and KB_SECRETS_FILE=/dev/null (so no .streamlit/secrets.toml is read):
the offline defaults, keyword search and extractive answers, exactly as a new install runs.

The baseline is plain BM25 over whole units (PDF pages or whole documents) with the same analyzer kb uses
(qdrant-edge's `Bm25`: English stop words and Snowball stemming, through `kb.embedding.Bm25Encoder`, which
gives the BM25 term-frequency part with k1 = 1.2, b = 0.75 and the corpus' own mean length). The IDF part is
computed here with Qdrant's formula, ln(1 + (N - n + 0.5) / (n + 0.5)), so the score is exactly
sum over the query's distinct terms of idf(term) * tf-part(term, unit): what kb's index computes for chunks.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import string
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import pypdfium2 as pdfium

KB_COMMAND = Path(sys.executable).with_name("kb")
_LINE = re.compile(r"^(ok|unchanged|failed) (.*?): (.*)$")


@dataclass
class IngestReport:
    """What `kb ingest FOLDER` printed: one outcome per file."""

    ok: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # name -> the one-line reason
    seconds: float = 0.0
    exit_code: int = 0


class KbRun:
    """A fresh knowledge base in a temporary folder, driven through the `kb` command line."""

    def __init__(self, prefix: str = "kb-qa-"):
        self.root = Path(tempfile.mkdtemp(prefix=prefix))
        self.data_dir = self.root / "data"
        self.work_dir = self.root / "cwd"
        self.work_dir.mkdir()

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KB_", "OPENAI_"))}
        env["KB_DATA_DIR"] = str(self.data_dir)
        env["KB_SECRETS_FILE"] = os.devnull  # the checkout's own secrets file stays out
        env["TQDM_DISABLE"] = "1"
        return env

    def command(self, *args: str) -> list[str]:
        if KB_COMMAND.exists():
            return [str(KB_COMMAND), *args]
        return [sys.executable, "-m", "kb.cli", *args]

    def ingest(self, folder: Path) -> IngestReport:
        started = time.perf_counter()
        done = subprocess.run(
            self.command("ingest", str(folder)), capture_output=True, text=True, env=self.env(), cwd=self.work_dir
        )
        report = IngestReport(seconds=round(time.perf_counter() - started, 1), exit_code=done.returncode)
        for line in done.stdout.splitlines():
            match = _LINE.match(line.strip())
            if not match:
                continue
            outcome, name, reason = match.groups()
            if outcome == "failed":
                report.failed[name] = reason
            else:
                report.ok.append(name)
        if done.returncode not in (0, 1) or not (report.ok or report.failed):
            raise RuntimeError(f"kb ingest failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
        return report

    def search_batch(self, queries: Sequence[tuple[str, str]], k: int) -> tuple[dict[str, list[dict[str, Any]]], float]:
        """One `kb search --batch FILE --json -k K` process for all queries; returns results by id and seconds."""
        batch = self.root / "queries.jsonl"
        batch.write_text("".join(json.dumps({"id": qid, "query": q}) + "\n" for qid, q in queries), encoding="utf-8")
        started = time.perf_counter()
        done = subprocess.run(
            self.command("search", "--batch", str(batch), "--json", "-k", str(k)),
            capture_output=True, text=True, env=self.env(), cwd=self.work_dir,
        )
        seconds = round(time.perf_counter() - started, 1)
        if done.returncode != 0:
            raise RuntimeError(f"kb search --batch failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
        results = {}
        for line in done.stdout.splitlines():
            if line.strip():
                row = json.loads(line)
                results[str(row["id"])] = row["results"]
        missing = [qid for qid, _ in queries if qid not in results]
        if missing:
            raise RuntimeError(f"kb search --batch returned no line for {len(missing)} queries, e.g. {missing[0]}")
        return results, seconds

    def library(self):
        """kb's KnowledgeBase on this data folder, with the offline defaults (no environment, no secrets
        file): for what the command line does not offer, such as asking questions in bulk. Close it."""

        from kb.config import load_settings
        from kb.service import KnowledgeBase

        settings = load_settings(env={}, secrets_file=self.work_dir / "no-secrets.toml")
        kb = KnowledgeBase(settings.replace(data_dir=self.data_dir, qdrant_url="", embedding=""))
        kb.open_index()
        return kb

    def stored_chunks(self, chunk_ids: Iterable[str]) -> dict[str, Any]:
        """The chunks as the index stores them (page_end included), read through kb's own index interface
        after the search process has exited. `kb search --json` reports only page_start."""
        from kb.index import point_id

        kb = self.library()
        try:
            by_point = kb.index.fetch([point_id(c) for c in sorted(set(chunk_ids))])
        finally:
            kb.close()
        return {chunk.chunk_id: chunk for chunk in by_point.values()}

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


# --- the baseline -----------------------------------------------------------------------------------


class UnitBm25:
    """Plain BM25 over whole units (pages, documents), with kb's analyzer; see the module docstring."""

    def __init__(self, units: Sequence[tuple[Any, str]], avg_len: float | None = None):
        """avg_len: the length BM25 normalizes by; by default the units' mean length in analyzer terms."""
        from kb.embedding import Bm25Encoder

        self.keys = [key for key, _ in units]
        texts = [text for _, text in units]
        if avg_len is None:
            lengths = [Bm25Encoder().token_count(text) for text in texts]
            avg_len = max(sum(lengths) / max(len(lengths), 1), 1.0)
        self.avg_len = avg_len
        self.encoder = Bm25Encoder(avg_len=self.avg_len)
        self.postings: dict[int, list[tuple[int, float]]] = defaultdict(list)
        for position, vector in enumerate(self.encoder.encode_documents(texts)):
            for term, weight in zip(vector.indices, vector.values):
                self.postings[term].append((position, weight))
        n = len(texts)
        self.idf = {term: math.log(1 + (n - len(p) + 0.5) / (len(p) + 0.5)) for term, p in self.postings.items()}

    def rank(self, query: str, limit: int | None = None) -> list[tuple[Any, float]]:
        """Units by descending score (ties in corpus order); units sharing no term are left out."""
        scores: dict[int, float] = defaultdict(float)
        for term in set(self.encoder.encode_query(query).indices):
            for position, weight in self.postings.get(term, ()):
                scores[position] += self.idf[term] * weight
        ordered = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
        return [(self.keys[p], s) for p, s in ordered[:limit]]


def ingest_and_ask(
    name: str, question_set: Callable[[Path], tuple[Path, list[dict[str, Any]]]],
    visit: Callable[[Any, dict[str, Any]], Any],
) -> tuple[IngestReport, list[Any], str]:
    """Stage a question set's files (`question_set(staging)` returns the folder to ingest and the questions),
    `kb ingest` them into a fresh data dir, open the library on it and call `visit(kb, question)` for each
    question: what the answer benchmarks share. Returns the ingest report, the visits and the answer mode."""
    staging = Path(tempfile.mkdtemp(prefix=f"{name}-files-"))
    run = KbRun(f"{name}-")
    try:
        files, questions = question_set(staging)
        ingest = run.ingest(files)
        print(f"{name}: {len(questions)} questions; kb ingest {len(ingest.ok)} ok, {len(ingest.failed)} failed, "
              f"{ingest.seconds} s", flush=True)
        for failed, reason in ingest.failed.items():
            print(f"  failed {failed}: {reason}")
        kb = run.library()
        try:
            visits = [visit(kb, q) for q in questions]
            mode = kb.answerer.mode
        finally:
            kb.close()
    finally:
        run.close()
        shutil.rmtree(staging, ignore_errors=True)
    return ingest, visits, mode


def pdf_pages(path: Path) -> list[str]:
    """Each page's whole text layer as pypdfium2 reads it (no header/footer removal: plain pages)."""
    document = pdfium.PdfDocument(str(path))
    try:
        pages = []
        for index in range(len(document)):
            page = document[index]
            textpage = page.get_textpage()
            try:
                pages.append(textpage.get_text_bounded())
            finally:
                textpage.close()
                page.close()
        return pages
    finally:
        document.close()


# --- scoring ----------------------------------------------------------------------------------------


def unique_in_order(items: Iterable[Any]) -> list[Any]:
    return list(dict.fromkeys(items))


def hit(ranked: Sequence[Any], expected: set[Any], k: int, need_all: bool = False) -> bool:
    """Whether the first k items hold one expected item (or every one, with need_all)."""
    top = set(ranked[:k])
    return expected <= top if need_all else bool(expected & top)


def mean(values: Iterable[float]) -> float | None:
    values = list(values)
    return round(sum(values) / len(values), 3) if values else None


def tokens_f1(prediction: str, reference: str) -> float:
    """SQuAD v1.1's token F1 (lower case, punctuation and articles removed, bag-of-words overlap)."""
    from collections import Counter

    p, r = normalize_answer(prediction).split(), normalize_answer(reference).split()
    common = Counter(p) & Counter(r)
    same = sum(common.values())
    if not p or not r:
        return float(p == r)
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(r)
    return 2 * precision * recall / (precision + recall)


_PUNCTUATION = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """SQuAD v1.1's official normalization: lower case, punctuation deleted, articles removed, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())
