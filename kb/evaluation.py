"""Measured retrieval quality: what `kb eval` reports, so every change to retrieval is judged by numbers.

Two kinds of test set. A BEIR-layout folder (corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv) is loaded
as text records into a throw-away knowledge base (`KnowledgeBase.load_records`: the product's chunking,
encoders and index) and scored with trec_eval's measures through pytrec_eval: nDCG@10, Recall@10,
Recall@100 and MRR@10. A question set over real files (JSONL of {question, source, page} plus a folder)
goes through the product's whole ingest path, parsing included, and is scored by whether the right
page, a page next to it, or at least the right document is among the first 1, 3, 5 or 10 passages.

Passages are chunks while the gold labels name documents (or pages), so a document ranks where its best
chunk ranks. Latency is that of `KnowledgeBase.search` returning the 10 passages a user would see.
"""

from __future__ import annotations

import json
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytrec_eval

from kb.config import Settings
from kb.embedding import DenseEmbedder
from kb.errors import BadRequest
from kb.records import Passage, TextRecord
from kb.retrieval import Retriever
from kb.service import KnowledgeBase

Mode = Literal["keyword", "dense", "hybrid"]
MODES: tuple[Mode, ...] = ("keyword", "dense", "hybrid")

DOCS_RANKED = 100  # documents ranked per query: enough for Recall@100
SHOWN = 10  # passages a search shows; latency is measured on this search
HIT_CUTOFFS = (1, 3, 5, 10)
BEIR_MEASURES = {"ndcg_cut_10": "ndcg@10", "recall_10": "recall@10", "recall_100": "recall@100"}
# Dense weights tried in hybrid mode (the dense model's share of the fused score); 0 drops the model.
DENSE_WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8)


class DatasetError(BadRequest):
    """A test set that cannot be read; the message is one line naming the file and what is wrong."""


# --- reading test sets ------------------------------------------------------------------------------


@dataclass(frozen=True)
class BeirSet:
    records: list[TextRecord]  # record name = the corpus _id, so results map back to the gold labels
    queries: dict[str, str]  # query id -> text, only the queries the split judges
    qrels: dict[str, dict[str, int]]  # query id -> {corpus id: graded relevance}


def load_beir(folder: Path, split: str = "test") -> BeirSet:
    folder = Path(folder)
    for needed in ("corpus.jsonl", "queries.jsonl", f"qrels/{split}.tsv"):
        if not (folder / needed).is_file():
            raise DatasetError(f"{folder} is not a BEIR folder: {needed} is missing")
    records = [
        TextRecord(name=str(row["_id"]), text=str(row["text"]), title=str(row.get("title") or ""))
        for row in _jsonl(folder / "corpus.jsonl", ("_id", "text"))
    ]
    qrels = _qrels(folder / "qrels" / f"{split}.tsv")
    texts = {str(row["_id"]): str(row["text"]) for row in _jsonl(folder / "queries.jsonl", ("_id", "text"))}
    missing = sorted(set(qrels) - set(texts))
    if missing:
        raise DatasetError(f"qrels/{split}.tsv judges queries that queries.jsonl lacks, e.g. {missing[0]!r}")
    return BeirSet(records=records, queries={q: texts[q] for q in qrels}, qrels=qrels)


def _jsonl(path: Path, required: tuple[str, ...]) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                row = None
            if not isinstance(row, dict) or any(key not in row for key in required):
                raise DatasetError(f"{path} line {number} is not a JSON object with {', '.join(required)}")
            yield row


def _qrels(path: Path) -> dict[str, dict[str, int]]:
    """query-id, corpus-id, score per tab-separated line; a header line is allowed."""
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            fields = line.rstrip("\n").split("\t")
            if not line.strip() or (number == 1 and fields[-1] == "score"):
                continue
            try:
                query, doc, score = fields
                qrels.setdefault(query, {})[doc] = int(score)
            except ValueError:
                raise DatasetError(f"{path} line {number} is not 'query-id<TAB>corpus-id<TAB>score'") from None
    if not qrels:
        raise DatasetError(f"{path} judges no query")
    return qrels


@dataclass(frozen=True)
class FileQuestion:
    question: str
    source: str  # the file's path inside the folder: the name kb gives the document
    page: int | None  # 1-based; None when only the document is known


def load_questions(path: Path) -> list[FileQuestion]:
    questions = []
    for row in _jsonl(Path(path), ("question", "source")):
        page = row.get("page")
        if page is not None and (not isinstance(page, int) or page < 1):
            raise DatasetError(f"{path}: page {page!r} of {row['question']!r} is not a page number")
        questions.append(FileQuestion(str(row["question"]), str(row["source"]).strip("/"), page))
    if not questions:
        raise DatasetError(f"{path} holds no question")
    return questions


# --- the throw-away knowledge base ------------------------------------------------------------------


@contextmanager
def throwaway_kb(settings: Settings, mode: Mode) -> Iterator[KnowledgeBase]:
    """A knowledge base in a temporary folder with the embedded engine, removed afterwards.

    Keyword mode runs without the dense model even when one is configured, so it costs no embedding.
    """
    if mode != "keyword" and not settings.embedding:
        raise DatasetError(f"--mode {mode} needs a dense model: set KB_EMBEDDING (and KB_EMBEDDING_PATH)")
    folder = Path(tempfile.mkdtemp(prefix="kb-eval-"))
    kb = KnowledgeBase(
        settings.replace(data_dir=folder, qdrant_url="", embedding=settings.embedding if mode != "keyword" else "")
    )
    try:
        kb.open_index()
        if mode != "keyword" and kb.serving.dense is None:
            raise DatasetError(f"--mode {mode}: " + "; ".join(kb.warnings))
        yield kb
    finally:
        kb.close()
        shutil.rmtree(folder, ignore_errors=True)


# --- scoring ----------------------------------------------------------------------------------------


def evaluate_beir(
    folder: Path, settings: Settings, mode: Mode = "keyword", split: str = "test",
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Index a BEIR folder's corpus and score the split's queries; returns the report `kb eval --json` prints.

    In hybrid mode the dense model's weight is calibrated, never assumed (see `calibrate_dense_weight`),
    and the report carries keyword mode's metrics on the same queries beside it.
    """
    data = load_beir(folder, split)
    say = progress or (lambda message: None)
    with throwaway_kb(settings, mode) as kb:
        say(f"indexing {len(data.records)} documents")
        started = time.perf_counter()
        documents, chunks = kb.load_records(data.records)
        index_s = time.perf_counter() - started
        # Enough chunks that DOCS_RANKED documents remain after keeping each document's best chunk.
        depth = DOCS_RANKED * -(-chunks // max(documents, 1)) + DOCS_RANKED // 2

        def run(retriever: Retriever) -> dict[str, dict[str, float]]:
            return {qid: document_run(retriever.search(text, k=depth)) for qid, text in data.queries.items()}

        say(f"searching {len(data.queries)} queries")
        extra: dict[str, Any] = {}
        if mode == "hybrid":
            dense = _QueryCache(kb.serving.dense)
            keyword_runs = run(_retriever(kb))
            runs_by_weight = {0.0: keyword_runs} | {
                weight: run(_retriever(kb, dense, weight)) for weight in DENSE_WEIGHTS if weight > 0
            }
            runs, chosen = calibrate_dense_weight(data.qrels, runs_by_weight)
            weight = choose_weight(data.qrels, runs_by_weight)
            retriever = _retriever(kb, kb.serving.dense, weight)
            extra = {
                "dense_weight": weight, "dense_weights_cross_fitted": chosen,
                "keyword_metrics": beir_metrics(data.qrels, keyword_runs),
                "by_dense_weight": {str(w): beir_metrics(data.qrels, r)["ndcg@10"] for w, r in runs_by_weight.items()},
            }
        else:
            retriever = _retriever(kb, kb.serving.dense, keywords=False) if mode == "dense" else _retriever(kb)
            runs = run(retriever)
        report = {
            "dataset": Path(folder).name, "format": "beir", "split": split, "mode": mode,
            "queries": len(data.queries), "documents": documents, "chunks": chunks,
            "metrics": beir_metrics(data.qrels, runs), **extra,
            "latency_ms": _latencies(retriever, list(data.queries.values())),
            "index_seconds": round(index_s, 1), **_setup(kb),
        }
    return report


def choose_weight(qrels: dict[str, dict[str, int]], runs_by_weight: dict[float, dict[str, dict[str, float]]]) -> float:
    """The weight with the best nDCG@10 on these queries; on a tie the smaller one (keyword search wins ties)."""
    scores = {w: beir_metrics(qrels, runs)["ndcg@10"] for w, runs in sorted(runs_by_weight.items())}
    return max(scores, key=lambda w: (scores[w], -w))


def calibrate_dense_weight(
    qrels: dict[str, dict[str, int]], runs_by_weight: dict[float, dict[str, dict[str, float]]]
) -> tuple[dict[str, dict[str, float]], list[float]]:
    """Hybrid runs whose dense weight was chosen without looking at the query being scored.

    Two-fold cross-fitting: the queries are split in two halves; each half is ranked with the weight
    that scored best on the other half. A weak dense model so gets weight 0 (dropped) or a small one
    instead of being fused blindly, and the reported figure is not tuned on its own queries.
    """
    ids = sorted(qrels)
    folds = [ids[0::2], ids[1::2]]
    fused: dict[str, dict[str, float]] = {}
    chosen = []
    for fold, other in ((folds[0], folds[1]), (folds[1], folds[0])):
        held_out = {w: {q: runs[q] for q in other} for w, runs in runs_by_weight.items()}
        weight = choose_weight({q: qrels[q] for q in other}, held_out) if other else 0.0
        chosen.append(weight)
        fused.update({q: runs_by_weight[weight][q] for q in fold})
    return fused, chosen


def document_run(passages: list[Passage], depth: int = DOCS_RANKED) -> dict[str, float]:
    """Documents in the order of their best passage, as {document name: score} for trec_eval.

    The score is derived from the rank (not the passage score), so trec_eval ranks exactly as kb did
    instead of re-sorting ties by document id.
    """
    order: dict[str, None] = {}
    for passage in passages:
        order.setdefault(passage.chunk.source, None)
    return {name: float(depth - rank) for rank, name in enumerate(list(order)[:depth])}


def beir_metrics(qrels: dict[str, dict[str, int]], runs: dict[str, dict[str, float]]) -> dict[str, float]:
    """nDCG@10, Recall@10, Recall@100 and MRR@10 averaged over the judged queries (BEIR's definitions)."""
    per_query = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.10,100"}).evaluate(runs)
    top10 = {qid: dict(sorted(run.items(), key=lambda item: item[1], reverse=True)[:10]) for qid, run in runs.items()}
    reciprocal = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(top10)
    metrics = {name: _mean(per_query, measure, qrels) for measure, name in BEIR_MEASURES.items()}
    metrics["mrr@10"] = _mean(reciprocal, "recip_rank", qrels)
    return metrics


def _mean(per_query: dict[str, dict[str, float]], measure: str, judged: dict[str, Any]) -> float:
    """Mean over every judged query: one that found nothing (trec_eval leaves it out) counts as 0."""
    total = sum(per_query.get(qid, {}).get(measure, 0.0) for qid in judged)
    return round(total / len(judged), 4) if judged else 0.0


def evaluate_questions(
    questions_path: Path, files: Path, settings: Settings, mode: Mode = "keyword",
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Ingest a folder of files the way `kb ingest` does, then score questions that name a file and a page."""
    questions = load_questions(questions_path)
    if not Path(files).is_dir():
        raise DatasetError(f"{files} is not a folder")
    say = progress or (lambda message: None)
    with throwaway_kb(settings, mode) as kb:
        say(f"ingesting {files}")
        started = time.perf_counter()
        jobs = [s.job_id for s in kb.submit_paths([Path(files)])]
        kb.work_queue()
        ingest_s = time.perf_counter() - started
        outcomes = kb.catalog.jobs(jobs)
        known = {job.name for job in outcomes}
        unknown = sorted({q.source for q in questions} - known)
        if unknown:
            raise DatasetError(f"{questions_path} names {unknown[0]!r}, which is not a file in {files}")
        say(f"asking {len(questions)} questions")
        weight = 1.0 if mode == "dense" else kb.settings.dense_weight
        retriever = _retriever(kb, kb.serving.dense, weight, keywords=mode != "dense")
        shown = [retriever.search(q.question, k=SHOWN) for q in questions]
        report = {
            "dataset": Path(questions_path).name, "format": "questions", "mode": mode,
            "questions": len(questions), "files": len(outcomes),
            "failed_files": {job.name: job.message for job in outcomes if job.outcome == "failed"},
            "hits": question_hits(questions, shown),
            "latency_ms": _latencies(retriever, [q.question for q in questions]),
            "ingest_seconds": round(ingest_s, 1), **_setup(kb),
        }
    return report


def question_hits(questions: list[FileQuestion], shown: list[list[Passage]]) -> dict[str, dict[str, Any]]:
    """Share of questions whose first k passages hold the page, a page within one of it, or the document.

    Scored as trec_eval's success@k: the relevant items of a question are the passages that match it,
    plus its gold label itself, so a question nothing matched counts as a miss rather than being skipped.
    """
    levels: dict[str, Callable[[FileQuestion, Passage], bool]] = {
        "page": lambda q, p: _on_page(p, q.page, 0),
        "page±1": lambda q, p: _on_page(p, q.page, 1),
        "document": lambda q, p: p.chunk.source == q.source,
    }
    measure = "success." + ",".join(map(str, HIT_CUTOFFS))
    hits: dict[str, dict[str, Any]] = {}
    for level, matches in levels.items():
        qrels: dict[str, dict[str, int]] = {}
        runs: dict[str, dict[str, float]] = {}
        for n, (question, passages) in enumerate(zip(questions, shown)):
            if level != "document" and question.page is None:
                continue
            qid = str(n)
            runs[qid] = {p.chunk.chunk_id: float(len(passages) - i) for i, p in enumerate(passages)}
            qrels[qid] = {"gold": 1} | {p.chunk.chunk_id: 1 for p in passages if matches(question, p)}
        scores = pytrec_eval.RelevanceEvaluator(qrels, {measure}).evaluate(runs) if qrels else {}
        shares = {f"hit@{k}": _mean(scores, f"success_{k}", qrels) for k in HIT_CUTOFFS}
        hits[level] = {"questions": len(qrels)} | shares
    return hits


def _on_page(passage: Passage, page: int | None, slack: int) -> bool:
    pages = passage.chunk.pages
    if page is None or pages is None:
        return False
    return pages[0] - slack <= page <= pages[1] + slack


def _latencies(search: Retriever, queries: list[str]) -> dict[str, float]:
    """p50 and p95 of a search for the 10 passages a user sees: query encoding and index search included."""
    timings = []
    for query in queries:
        started = time.perf_counter()
        search.search(query, k=SHOWN)
        timings.append((time.perf_counter() - started) * 1000)
    timings.sort()
    return {"p50": round(_percentile(timings, 50), 2), "p95": round(_percentile(timings, 95), 2)}


def _percentile(sorted_values: list[float], percent: int) -> float:
    if len(sorted_values) < 2:
        return sorted_values[0] if sorted_values else 0.0
    return statistics.quantiles(sorted_values, n=100, method="inclusive")[percent - 1]


def _retriever(
    kb: KnowledgeBase, dense: DenseEmbedder | None = None, weight: float = 1.0, keywords: bool = True
) -> Retriever:
    """The product's Retriever over the throw-away index, with the dense side weighed as asked (0 drops it)."""
    return Retriever(
        index=lambda: kb.index, sparse=kb.serving.sparse, dense=dense if weight > 0 else None, dense_weight=weight,
        keywords=keywords,
    )


class _QueryCache:
    """A dense model that embeds each query once, so trying several weights costs no extra embedding."""

    def __init__(self, model: DenseEmbedder | None):
        assert model is not None
        self._model = model
        self.model_id, self.dim = model.model_id, model.dim
        self._vectors: dict[str, list[float]] = {}

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self._model.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        if text not in self._vectors:
            self._vectors[text] = self._model.embed_query(text)
        return self._vectors[text]


def _setup(kb: KnowledgeBase) -> dict[str, Any]:
    spec = kb.index.spec
    return {"settings": {"chunk_words": kb.settings.chunk_words, "bm25_avg_len": round(spec.bm25_avg_len, 1),
                         "dense_model": spec.dense_model}}
