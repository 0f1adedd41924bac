"""The work that changes the index: ingest a stored file, delete a document, rebuild everything.

Every change goes through the catalog's job queue and is done by the one process that holds the
index (the embedded engine admits a single process), so `kb ingest` works while the app is running:
it queues the files and the app's worker picks them up. Jobs run one at a time, in order.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import replace
from statistics import fmean
from typing import TYPE_CHECKING, Callable

from kb.access import Rights, check_groups, target_for
from kb.auth import NotAuthorized
from kb.catalog import doc_id_for, new_doc_id
from kb.chunking import chunk_document
from kb.embedding import Bm25Encoder, EmbeddingUnavailable
from kb.index import IndexSpec, VectorIndex
from kb.parsing import detect_type
from kb.pipeline import IndexWriteFailed, release_memory, write_version
from kb.records import Chunk, Document, Job, ParseError, TextRecord

if TYPE_CHECKING:
    from kb.service import KnowledgeBase

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]  # (done, total)

# Before the first re-index measures the corpus, BM25 assumes this share of a chunk's words survive
# stop-word removal (measured ~0.55-0.6 on the handbooks); the re-index replaces it with the real mean.
_TOKENS_PER_WORD = 0.6


# Chunks encoded together when an index is built: a dense model embeds a batch much faster than one by one.
ENCODE_BATCH = 256


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
                outcome, message = self.delete(job)
            elif job.kind == "groups":
                outcome, message = self.apply_groups(job.doc_id)
            elif job.kind == "reindex":
                outcome, message = self.reindex(progress)
            else:
                outcome, message = "failed", f"unknown job kind {job.kind!r}"
        except NotAuthorized as exc:  # the rules of kb.access, judged when the job runs
            outcome, message = "failed", str(exc)
        except (OSError, EmbeddingUnavailable) as exc:  # the disk or a service, not the file: say which
            log.warning("job %s (%s %s) failed: %s", job.id, job.kind, job.name, exc)
            outcome, message = "failed", str(exc)
        except Exception as exc:  # a job never takes the worker down; the reason is kept
            log.exception("job %s (%s %s) failed", job.id, job.kind, job.name)
            outcome, message = "failed", f"internal error: {type(exc).__name__}: {exc}"
        self.kb.catalog.finish(job.id, outcome, message)
        return outcome, message

    # ingest ----------------------------------------------------------------------------------
    def ingest(self, job: Job) -> tuple[str, str]:
        """A new version of the document the submitter may change under that name, or a new document
        (kb.access.target_for); its groups are the document's, changed only when the job asks to."""
        kb = self.kb
        rights = Rights(job.uploader, job.actor_groups, job.actor_admin)
        groups = None if job.groups is None else check_groups(job.groups, rights)
        existing = target_for(job.name, kb.catalog.named(job.name), rights)
        draft = existing or Document(
            doc_id=new_doc_id(), name=job.name, version=0, status="failed", owner=rights.name,
            groups=groups or (),
        )
        draft = replace(draft, sha256=job.blob, size=job.size, uploader=rights.name)
        if job.outcome == "failed":  # refused before it was stored (e.g. over the size limit)
            kb.catalog.record_failure(draft, job.message)
            return "failed", job.message
        relabelled = ""
        if existing is not None and groups is not None and groups != existing.groups:
            self.set_groups(existing, groups)
            draft = replace(draft, groups=groups)
            relabelled = f"; now visible to {_audience(groups)}"
        if existing is not None and (made := kb.catalog.version_made_by(existing.doc_id, job.id)):
            return "ok", _ingested(*made) + relabelled  # this job did it before a crash stopped it
        if existing is not None and existing.status == "ok" and existing.sha256 == job.blob:
            return "unchanged", f"already indexed (version {existing.version}){relabelled}"
        doc_id = draft.doc_id
        try:
            path = kb.blobs.path(job.blob)
            draft = replace(draft, kind=detect_type(path, job.name))
            stream = kb.sandbox.parse_stream(path, job.name, kb.max_bytes)  # parsed; the elements follow
        except ParseError as exc:
            kb.catalog.record_failure(draft, exc.reason)
            return "failed", exc.reason
        with stream:
            version = kb.catalog.next_version(doc_id)
            kb.catalog.begin_version(draft, version, job.id)
            try:
                written = write_version(
                    stream, index=kb.index, encode=kb.encode, doc_id=doc_id, version=version, source=job.name,
                    title=stream.info.title, target_words=kb.settings.chunk_words, groups=draft.groups,
                )
            except ParseError as exc:  # the helper died or stalled midway (write_version removed what it wrote)
                kb.catalog.abort_version(doc_id, version, exc.reason)
                return "failed", exc.reason
            except IndexWriteFailed as exc:
                reason = f"the index refused the update: {exc.reason}"
                kb.catalog.abort_version(doc_id, version, reason)
                return "failed", reason
            except BaseException as exc:  # encoding (EmbeddingUnavailable) or a bug: run() reports it
                kb.catalog.abort_version(doc_id, version, str(exc) or type(exc).__name__)
                raise
        kb.catalog.commit_version(doc_id, version, stream.info.pages, written.chunks)
        try:
            kb.index.delete_other_versions(doc_id, version)
        except Exception as exc:  # the new version serves; old points are dropped from results until recovery
            log.warning("could not remove the older versions of %s: %s", job.name, exc)
        release_memory()
        return "ok", _ingested(version, stream.info.pages, written.chunks) + relabelled

    # visibility ------------------------------------------------------------------------------
    def set_groups(self, doc: Document, groups: tuple[str, ...]) -> None:
        """Change who sees a document: the index first, so a narrowing never leaks; then the catalog."""
        self.kb.index.set_groups(doc.doc_id, groups)
        self.kb.catalog.set_groups(doc.doc_id, groups)

    def apply_groups(self, doc_id: str) -> tuple[str, str]:
        """Bring the index's copy of a document's groups in line with the catalog, which changed first
        (KnowledgeBase.set_groups); searches check the catalog meanwhile."""
        doc = self.kb.catalog.document(doc_id)
        if doc is None:
            return "ok", "the document is gone"
        self.kb.index.set_groups(doc_id, doc.groups)
        return "ok", f"{doc.name} is visible to {_audience(doc.groups)}"

    # delete ----------------------------------------------------------------------------------
    def delete(self, job: Job) -> tuple[str, str]:
        kb = self.kb
        doc = kb.catalog.document(job.doc_id) if job.doc_id else None
        if doc is None:
            return "failed", f"no document {job.name or job.doc_id!r}"
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
                parsed = kb.parse(kb.blobs.path(doc.sha256), doc.name)
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

        def indexed(count: int) -> None:
            nonlocal done
            done += count
            if progress:
                progress(done, total)

        new_index = self._build_index([(doc.version, chunks) for doc, chunks, _ in rebuilt], indexed)
        kb.swap_index(new_index)
        kb.catalog.set_meta("last_reindex", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        for doc, chunks, pages in rebuilt:
            kb.catalog.update_counts(doc.doc_id, pages, len(chunks))
        chunk_total = sum(len(c) for _, c, _ in rebuilt)
        message = f"re-indexed {len(rebuilt)} documents, {chunk_total} chunks"
        if failures:
            message += f"; {len(failures)} could not be parsed again (see kb docs)"
        return "ok", message

    def _build_index(
        self, documents: list[tuple[int, list[Chunk]]], indexed: Callable[[int], None] | None = None
    ) -> VectorIndex:
        """A new generation (not yet serving) holding these (version, chunks) documents, BM25 normalised
        by their own mean length. Chunks are encoded in batches across documents, which a dense model
        needs to be fast; `indexed(n)` is told after every n documents."""
        kb = self.kb
        assert kb.index_store is not None
        sparse = Bm25Encoder(avg_len=self._corpus_avg_len([chunks for _, chunks in documents]))
        spec = IndexSpec(
            dense_model=kb.dense.model_id if kb.dense else None,
            dense_dim=kb.dense.dim if kb.dense else None,
            bm25_avg_len=sparse.avg_len,
            chunk_words=kb.settings.chunk_words,
        )
        new_index = kb.index_store.create(spec)
        try:
            for batch in _batches(documents, ENCODE_BATCH):
                items = iter(kb.encode([chunk for _, chunks in batch for chunk in chunks], sparse))
                for version, chunks in batch:
                    new_index.replace_document(chunks[0].doc_id, version, [next(items) for _ in chunks])
                if indexed:
                    indexed(len(batch))
            return kb.index_store.optimize(new_index)
        except BaseException:
            kb.index_store.discard(new_index)
            raise

    def _corpus_avg_len(self, documents: list[list[Chunk]]) -> float:
        counter = self.kb.sparse
        lengths = [counter.token_count(c.indexed_text) for chunks in documents for c in chunks]
        return fmean(lengths) if lengths else initial_avg_len(self.kb.settings.chunk_words)

    # text records ----------------------------------------------------------------------------
    def load_records(self, records: Iterable[TextRecord], progress: Progress | None = None) -> tuple[int, int]:
        """Fill an empty knowledge base with text records (no files), the way a re-index builds an index:
        chunked, encoded, indexed in a new generation, then served and listed in the catalog.

        For evaluation corpora and throw-away knowledge bases; returns (documents, chunks). Records
        without text are skipped. Raises ValueError when the knowledge base already has documents
        (a record has no original a later re-index could read again) or two records share a name.
        """
        kb = self.kb
        if kb.catalog.documents():
            raise ValueError("text records can only be loaded into an empty knowledge base")
        documents: dict[str, tuple[Document, list[Chunk]]] = {}
        for record in records:
            doc_id = doc_id_for(record.name)
            if doc_id in documents:
                raise ValueError(f"two records are named {record.name!r}")
            chunks = chunk_document(
                record.parsed(), doc_id=doc_id, version=1, source=record.name, target_words=kb.settings.chunk_words
            )
            if chunks:
                text = f"{record.title}\n\n{record.text}".encode()
                doc = Document(doc_id=doc_id, name=record.name, version=0, status="failed",
                               sha256=hashlib.sha256(text).hexdigest(), size=len(text), kind="record")
                documents[doc_id] = (doc, chunks)
        done, total = 0, len(documents)

        def indexed(count: int) -> None:
            nonlocal done
            done += count
            if progress:
                progress(done, total)

        new_index = self._build_index([(1, chunks) for _, chunks in documents.values()], indexed)
        for doc, _ in documents.values():
            kb.catalog.begin_version(doc, 1)
        kb.swap_index(new_index)
        for doc, chunks in documents.values():
            kb.catalog.commit_version(doc.doc_id, 1, None, len(chunks))
        return len(documents), sum(len(chunks) for _, chunks in documents.values())


def _ingested(version: int, pages: int | None, chunks: int) -> str:
    return f"{chunks} chunks" + (f", {pages} pages" if pages else "") + f", version {version}"


def _audience(groups: tuple[str, ...]) -> str:
    return "everyone" if not groups else "group " + ", ".join(groups) + " (and admins)"


def _batches(
    documents: list[tuple[int, list[Chunk]]], max_chunks: int
) -> Iterator[list[tuple[int, list[Chunk]]]]:
    """Whole documents, grouped so each group holds about `max_chunks` chunks (one big document alone)."""
    batch: list[tuple[int, list[Chunk]]] = []
    size = 0
    for document in documents:
        if batch and size + len(document[1]) > max_chunks:
            yield batch
            batch, size = [], 0
        batch.append(document)
        size += len(document[1])
    if batch:
        yield batch


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
