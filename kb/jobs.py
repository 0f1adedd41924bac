"""The work that changes the index: ingest a stored file, delete a document, rebuild everything.

Every change goes through the catalog's job queue and is done by the one process that holds the
index (the embedded engine admits a single process), so `kb ingest` works while the app is running:
it queues the files and the app's worker picks them up. Jobs run one at a time, in order.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from statistics import fmean
from typing import TYPE_CHECKING, Callable

from kb.catalog import doc_id_for
from kb.chunking import chunk_document
from kb.embedding import Bm25Encoder
from kb.index import IndexSpec
from kb.parsing import detect_type, parse_file
from kb.records import Chunk, Document, Job, ParseError

if TYPE_CHECKING:
    from kb.service import KnowledgeBase

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]  # (done, total)

# Before the first re-index measures the corpus, BM25 assumes this share of a chunk's words survive
# stop-word removal (measured ~0.55-0.6 on the handbooks); the re-index replaces it with the real mean.
_TOKENS_PER_WORD = 0.6


def initial_avg_len(chunk_words: int) -> float:
    return max(32.0, chunk_words * _TOKENS_PER_WORD)


class JobRunner:
    """Does queued jobs against the knowledge base's serving index."""

    def __init__(self, kb: KnowledgeBase):
        self.kb = kb

    def run(self, job: Job, progress: Progress | None = None) -> tuple[str, str]:
        """Do one job; returns (outcome, message) and records it in the catalog."""
        try:
            if job.kind == "ingest":
                outcome, message = self.ingest(job)
            elif job.kind == "delete":
                outcome, message = self.delete(job.name)
            elif job.kind == "reindex":
                outcome, message = self.reindex(progress)
            else:
                outcome, message = "failed", f"unknown job kind {job.kind!r}"
        except Exception as exc:  # a job never takes the worker down; the reason is kept
            log.exception("job %s (%s %s) failed", job.id, job.kind, job.name)
            outcome, message = "failed", f"internal error: {type(exc).__name__}: {exc}"
        self.kb.catalog.finish(job.id, outcome, message)
        return outcome, message

    # ingest ----------------------------------------------------------------------------------
    def ingest(self, job: Job) -> tuple[str, str]:
        kb = self.kb
        doc_id = doc_id_for(job.name)
        if job.outcome == "failed":  # refused before it was stored (e.g. over the size limit)
            draft = Document(doc_id=doc_id, name=job.name, version=0, status="failed", size=job.size,
                             uploader=job.uploader, groups=job.groups)
            kb.catalog.record_failure(draft, job.message)
            return "failed", job.message
        existing = kb.catalog.document(doc_id)
        if existing and existing.status == "ok" and existing.sha256 == job.blob:
            return "unchanged", f"already indexed (version {existing.version})"
        draft = Document(
            doc_id=doc_id, name=job.name, version=0, status="failed", sha256=job.blob,
            size=job.size, uploader=job.uploader, groups=job.groups,
        )
        try:
            path = kb.blobs.path(job.blob)
            draft = replace(draft, kind=detect_type(path, job.name))
            parsed = parse_file(path, filename=job.name, max_bytes=kb.max_bytes)
            version = kb.catalog.next_version(doc_id)
            chunks = chunk_document(
                parsed, doc_id=doc_id, version=version, source=job.name,
                target_words=kb.settings.chunk_words, groups=job.groups,
            )
            if not chunks:
                raise ParseError("no text found")
        except ParseError as exc:
            kb.catalog.record_failure(draft, exc.reason)
            return "failed", exc.reason
        items = kb.encode(chunks)
        kb.catalog.begin_version(draft, version)
        try:
            kb.index.replace_document(doc_id, version, items)
        except Exception as exc:
            reason = f"the index refused the update: {exc}"
            kb.catalog.abort_version(doc_id, version, reason)
            return "failed", reason
        kb.catalog.commit_version(doc_id, version, parsed.pages, len(chunks))
        pages = f", {parsed.pages} pages" if parsed.pages else ""
        return "ok", f"{len(chunks)} chunks{pages}, version {version}"

    # delete ----------------------------------------------------------------------------------
    def delete(self, ref: str) -> tuple[str, str]:
        kb = self.kb
        doc = kb.catalog.document(ref)
        if doc is None:
            return "failed", f"no document named {ref!r}"
        kb.catalog.mark_deleting(doc.doc_id)
        kb.index.delete_document(doc.doc_id)
        for blob in kb.catalog.remove_document(doc.doc_id):
            kb.blobs.delete(blob)
        return "ok", f"deleted {doc.name}"

    # re-index --------------------------------------------------------------------------------
    def reindex(self, progress: Progress | None = None) -> tuple[str, str]:
        """Rebuild from the stored originals into a new index; swap it in only when complete."""
        kb = self.kb
        documents = [d for d in kb.catalog.documents() if d.status == "ok" and d.version > 0]
        total = len(documents) * 2  # parse everything, then index everything
        done = 0
        rebuilt: list[tuple[Document, list[Chunk], int | None]] = []
        failures: list[str] = []
        for doc in documents:
            try:
                parsed = parse_file(kb.blobs.path(doc.sha256), filename=doc.name, max_bytes=kb.max_bytes)
                chunks = chunk_document(
                    parsed, doc_id=doc.doc_id, version=doc.version, source=doc.name,
                    target_words=kb.settings.chunk_words, groups=doc.groups,
                )
                if not chunks:
                    raise ParseError("no text found")
                rebuilt.append((doc, chunks, parsed.pages))
            except ParseError as exc:
                failures.append(doc.doc_id)
                kb.catalog.unserve(doc.doc_id, f"re-index: {exc.reason}")
            done += 1
            if progress:
                progress(done, total)

        sparse = Bm25Encoder(avg_len=self._corpus_avg_len(rebuilt))
        spec = IndexSpec(
            dense_model=kb.dense.model_id if kb.dense else None,
            dense_dim=kb.dense.dim if kb.dense else None,
            bm25_avg_len=sparse.avg_len,
        )
        new_index = kb.index_store.create(spec)
        try:
            for doc, chunks, _pages in rebuilt:
                new_index.replace_document(doc.doc_id, doc.version, kb.encode(chunks, sparse))
                done += 1
                if progress:
                    progress(done, total)
        except BaseException:
            kb.index_store.discard(new_index)
            raise
        kb.swap_index(new_index)
        for doc, chunks, pages in rebuilt:
            kb.catalog.update_counts(doc.doc_id, pages, len(chunks))
        chunk_total = sum(len(c) for _, c, _ in rebuilt)
        message = f"re-indexed {len(rebuilt)} documents, {chunk_total} chunks"
        if failures:
            message += f"; {len(failures)} could not be parsed again (see kb docs)"
        return "ok", message

    def _corpus_avg_len(self, rebuilt: list[tuple[Document, list[Chunk], int | None]]) -> float:
        counter = self.kb.sparse
        lengths = [counter.token_count(c.indexed_text) for _, chunks, _ in rebuilt for c in chunks]
        return fmean(lengths) if lengths else initial_avg_len(self.kb.settings.chunk_words)


class Worker:
    """A background thread that works through the queue, for a long-lived process such as the app."""

    def __init__(self, kb: KnowledgeBase, poll_s: float = 1.0):
        self.kb = kb
        self.poll_s = poll_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="kb-worker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                worked = self.kb.work_queue()
            except Exception:  # keep serving; the next poll tries again
                log.exception("queue worker error")
                worked = 0
            if not worked:
                self._stop.wait(self.poll_s)
