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
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Callable

from kb.access import Rights, can_change, can_see, check_groups, refusal, target_for
from kb.auth import NotAuthorized
from kb.catalog import SqliteCatalog, doc_id_for, new_doc_id
from kb.chunking import iter_chunks
from kb.config import Settings
from kb.embedding import EmbeddingUnavailable
from kb.errors import BadRequest
from kb.parsing import ParseSandbox, detect_type
from kb.pipeline import GenerationBuilder, IndexWriteFailed, release_memory, write_version
from kb.records import Chunk, Document, Job, ParseError, TextRecord
from kb.serving import ServingIndex
from kb.storage import BlobStore

if TYPE_CHECKING:
    from kb.queue import JobQueue

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]  # (done, total)
Stage = Callable[[Job, str], None]  # (job, stage reached): "started", "parsed", "indexing", "written"

CANCELLED = "cancelled; nothing of it was indexed"


class JobCancelled(Exception):
    """Someone cancelled the running job (KnowledgeBase.cancel_job): raised at the runner's next check,
    after which the runner undoes what the job began, so the index and the catalog are as they were."""


@dataclass
class JobRunner:
    """Does queued jobs against the serving index, recording each outcome in the catalog."""

    settings: Settings
    catalog: SqliteCatalog
    blobs: BlobStore
    sandbox: ParseSandbox
    serving: ServingIndex
    on_stage: Stage | None = None  # told each stage an ingest reaches, just before its cancellation check

    @property
    def max_bytes(self) -> int:
        return int(self.settings.max_file_mb * 1024 * 1024)

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
        except JobCancelled:
            outcome, message = "cancelled", CANCELLED
        except NotAuthorized as exc:  # the rules of kb.access, judged when the job runs
            outcome, message = "failed", str(exc)
        except (OSError, EmbeddingUnavailable) as exc:  # the disk or a service, not the file: say which
            log.warning("job %s (%s %s) failed: %s", job.id, job.kind, job.name, exc)
            outcome, message = "failed", str(exc)
        except Exception as exc:  # a job never takes the worker down; the reason is kept
            log.exception("job %s (%s %s) failed", job.id, job.kind, job.name)
            outcome, message = "failed", f"internal error: {type(exc).__name__}: {exc}"
        if job.kind == "ingest" and outcome == "failed":  # refused, or failed before it was recorded
            self.catalog.record_attempt(job, message, job.doc_id)
        self.catalog.finish(job.id, outcome, message)
        if outcome == "cancelled" and job.blob and not self.catalog.blob_in_use(job.blob):
            self.blobs.delete(job.blob)  # nothing else needs it: the person did not want it kept
        return outcome, message

    def checkpoint(self, job: Job, stage: str) -> None:
        """Between stages of a job: raise JobCancelled if someone asked to stop it."""
        if self.on_stage is not None:
            self.on_stage(job, stage)
        if job.id and self.catalog.cancel_requested(job.id):
            raise JobCancelled(stage)

    # ingest ----------------------------------------------------------------------------------
    def ingest(self, job: Job) -> tuple[str, str]:
        """A new version of the document the submitter may change under that name, or a new document
        (kb.access.target_for); its groups are the document's, changed only when the job asks to."""
        self.checkpoint(job, "started")
        catalog = self.catalog
        rights = Rights(job.uploader, job.actor_groups, job.actor_admin)
        groups = None if job.groups is None else check_groups(job.groups, rights)
        existing = self._chosen(job, rights) if job.doc_id else target_for(job.name, catalog.named(job.name), rights)
        draft = existing or Document(
            doc_id=new_doc_id(), name=job.name, version=0, status="failed", owner=rights.name,
            groups=groups or (),
        )
        draft = replace(draft, sha256=job.blob, size=job.size, uploader=rights.name)
        if job.outcome == "failed":  # refused before it was stored (e.g. over the size limit)
            catalog.record_failure(draft, job.message, job)
            return "failed", job.message
        relabelled = ""
        if existing is not None and groups is not None and groups != existing.groups:
            self.set_groups(existing, groups)
            draft = replace(draft, groups=groups)
            relabelled = f"; now visible to {_audience(groups)}"
        try:
            return self._new_version(job, existing, draft, relabelled)
        except JobCancelled:
            if relabelled and existing is not None:  # back to who saw it before (the index first, as always)
                self.set_groups(existing, existing.groups)
            raise

    def _new_version(self, job: Job, existing: Document | None, draft: Document, relabelled: str) -> tuple[str, str]:
        """Parse the job's file and write it as the document's next version; a cancellation between
        stages (or between batches while writing) leaves no trace of the version in index or catalog."""
        catalog, index = self.catalog, self.serving.index
        if existing is not None and (made := catalog.version_made_by(existing.doc_id, job.id)):
            return "ok", _ingested(*made) + relabelled  # this job did it before a crash stopped it
        if existing is not None and existing.status == "ok" and existing.sha256 == job.blob and not job.doc_id:
            return "unchanged", f"already indexed (version {existing.version}){relabelled}"
        doc_id = draft.doc_id
        try:
            path = self.blobs.path(job.blob)
            draft = replace(draft, kind=detect_type(path, job.name))
            stream = self.sandbox.parse_stream(path, job.name, self.max_bytes)  # parsed; the elements follow
        except ParseError as exc:
            catalog.record_failure(draft, exc.reason, job)
            return "failed", exc.reason
        with stream:
            self.checkpoint(job, "parsed")
            version = catalog.next_version(doc_id)
            catalog.begin_version(draft, version, job.id)
            complete = False
            try:
                written = write_version(
                    stream, index=index, encode=self.serving.encode, doc_id=doc_id, version=version, source=job.name,
                    title=stream.info.title, date=stream.info.date, target_words=self.settings.chunk_words,
                    groups=draft.groups, progress=lambda _: self.checkpoint(job, "indexing"),
                )  # cancelled between batches: write_version removes what it wrote
                complete = True
                self.checkpoint(job, "written")
            except JobCancelled:
                if complete:  # every point is in but none serves yet: remove them
                    try:
                        index.delete_version(doc_id, version)
                    except Exception as exc:  # never served; recovery removes them (not in the catalog)
                        log.warning("could not remove the cancelled version of %s: %s", job.name, exc)
                catalog.discard_version(doc_id, version, existing)
                raise
            except ParseError as exc:  # the helper died or stalled midway (write_version removed what it wrote)
                catalog.abort_version(doc_id, version, exc.reason, job)
                return "failed", exc.reason
            except IndexWriteFailed as exc:
                reason = f"the index refused the update: {exc.reason}"
                catalog.abort_version(doc_id, version, reason, job)
                return "failed", reason
            except BaseException as exc:  # encoding (EmbeddingUnavailable) or a bug: run() reports it
                catalog.abort_version(doc_id, version, str(exc) or type(exc).__name__, job)
                raise
        catalog.commit_version(doc_id, version, stream.info.pages, written.chunks)
        try:
            index.delete_other_versions(doc_id, version)
        except Exception as exc:  # the new version serves; old points are dropped from results until recovery
            log.warning("could not remove the older versions of %s: %s", job.name, exc)
        release_memory()
        return "ok", _ingested(version, stream.info.pages, written.chunks) + relabelled

    def _chosen(self, job: Job, rights: Rights) -> Document:
        """The document a re-ingest or a retry names by id (KnowledgeBase.reingest, retry_attempt), if the
        submitter may still change it; the same refusal whether it is gone or hidden."""
        doc = self.catalog.document(job.doc_id)
        if doc is None or doc.status == "deleting" or not can_see(doc, rights):
            raise NotAuthorized(f"adding a new version: there is no document with id {job.doc_id!r}")
        if not can_change(doc, rights):
            raise refusal(doc, "adding a new version")
        return doc

    # visibility ------------------------------------------------------------------------------
    def set_groups(self, doc: Document, groups: tuple[str, ...]) -> None:
        """Change who sees a document: the index first, so a narrowing never leaks; then the catalog."""
        self.serving.index.set_groups(doc.doc_id, groups)
        self.catalog.set_groups(doc.doc_id, groups)

    def apply_groups(self, doc_id: str) -> tuple[str, str]:
        """Bring the index's copy of a document's groups in line with the catalog, which changed first
        (KnowledgeBase.set_groups); searches check the catalog meanwhile."""
        doc = self.catalog.document(doc_id)
        if doc is None:
            return "ok", "the document is gone"
        self.serving.index.set_groups(doc_id, doc.groups)
        return "ok", f"{doc.name} is visible to {_audience(doc.groups)}"

    # delete ----------------------------------------------------------------------------------
    def delete(self, job: Job) -> tuple[str, str]:
        doc = self.catalog.document(job.doc_id) if job.doc_id else None
        if doc is None:
            return "failed", f"no document {job.name or job.doc_id!r}"
        self.catalog.mark_deleting(doc.doc_id)
        self.serving.index.delete_document(doc.doc_id)
        for blob in self.catalog.remove_document(doc.doc_id):
            self.blobs.delete(blob)
        return "ok", f"deleted {doc.name}"

    # re-index --------------------------------------------------------------------------------
    def reindex(self, progress: Progress | None = None) -> tuple[str, str]:
        """Rebuild from the stored originals into a new generation; serve it only when complete."""
        catalog = self.catalog
        documents = [d for d in catalog.documents() if d.status == "ok" and d.version > 0]
        total = len(documents) * 2  # parse everything, then index everything
        done = 0
        rebuilt: list[tuple[Document, int | None, int]] = []  # (document, pages, chunks)
        failures = 0

        def indexed(count: int) -> None:
            nonlocal done
            done += count
            if progress:
                progress(done, total)

        builder = GenerationBuilder(self.serving, self.settings.data_dir)
        try:
            for doc in documents:
                try:
                    pages, chunks = self._rechunk(doc)
                    builder.add(chunks)
                    rebuilt.append((doc, pages, len(chunks)))
                except ParseError as exc:
                    failures += 1
                    catalog.unserve(doc.doc_id, f"re-index: {exc.reason}")
                indexed(1)
            new_index = builder.build(indexed)
        finally:
            builder.close()
        self.serving.swap(new_index)
        catalog.set_meta("last_reindex", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        for doc, pages, count in rebuilt:
            catalog.update_counts(doc.doc_id, pages, count)
        message = f"re-indexed {len(rebuilt)} documents, {builder.chunks} chunks"
        if failures:
            message += f"; {failures} could not be parsed again (see kb docs)"
        return "ok", message

    def _rechunk(self, doc: Document) -> tuple[int | None, list[Chunk]]:
        """A document's stored original parsed (in the helper) and chunked again: (pages, chunks)."""
        stream = self.sandbox.parse_stream(self.blobs.path(doc.sha256), doc.name, self.max_bytes)
        with stream:
            chunks = list(iter_chunks(
                stream, title=stream.info.title, date=stream.info.date, doc_id=doc.doc_id, version=doc.version, source=doc.name,
                target_words=self.settings.chunk_words, groups=doc.groups,
            ))
        if not chunks:
            raise ParseError("no text found")
        return stream.info.pages, chunks

    # text records ----------------------------------------------------------------------------
    def load_records(self, records: Iterable[TextRecord], progress: Progress | None = None) -> tuple[int, int]:
        """Fill an empty knowledge base with text records (no files), the way a re-index builds an index:
        chunked, encoded, indexed in a new generation, then served and listed in the catalog.

        For evaluation corpora and throw-away knowledge bases; returns (documents, chunks). Records
        without text are skipped. Raises BadRequest (a ValueError) when the knowledge base already has
        documents (a record has no original a later re-index could read again) or two records share a name.
        """
        catalog = self.catalog
        if catalog.documents():
            raise BadRequest("text records can only be loaded into an empty knowledge base")
        documents: dict[str, tuple[Document, int]] = {}
        done = 0

        def indexed(count: int) -> None:
            nonlocal done
            done += count
            if progress:
                progress(done, len(documents))

        builder = GenerationBuilder(self.serving, self.settings.data_dir)
        try:
            for record in records:
                doc_id = doc_id_for(record.name)
                if doc_id in documents:
                    raise BadRequest(f"two records are named {record.name!r}")
                parsed = record.parsed()
                chunks = list(iter_chunks(
                    parsed.elements, title=parsed.title, doc_id=doc_id, version=1, source=record.name,
                    target_words=self.settings.chunk_words,
                ))
                if chunks:
                    text = f"{record.title}\n\n{record.text}".encode()
                    doc = Document(doc_id=doc_id, name=record.name, version=0, status="failed",
                                   sha256=hashlib.sha256(text).hexdigest(), size=len(text), kind="record")
                    documents[doc_id] = (doc, len(chunks))
                    builder.add(chunks)
            new_index = builder.build(indexed)
        finally:
            builder.close()
        for doc, _ in documents.values():
            catalog.begin_version(doc, 1)
        self.serving.swap(new_index)
        for doc, count in documents.values():
            catalog.commit_version(doc.doc_id, 1, None, count)
        return len(documents), builder.chunks


def reindex_step(done: int, total: int) -> str:
    """A re-index's progress in words. Its steps (JobRunner.reindex) are each document read again, then
    each document written to the new index: `total` is twice the documents."""
    documents = total // 2
    if done <= documents:
        return f"reading the originals again: {done} of {documents} documents"
    return f"writing the new index: {done - documents} of {documents} documents"


def _ingested(version: int, pages: int | None, chunks: int) -> str:
    return f"{chunks} chunks" + (f", {pages} pages" if pages else "") + f", version {version}"


def _audience(groups: tuple[str, ...]) -> str:
    return "everyone" if not groups else "group " + ", ".join(groups) + " (and admins)"


class Worker:
    """A background thread that works through the queue, for a long-lived process such as the app."""

    def __init__(self, queue: JobQueue, poll_s: float = 1.0):
        self.queue = queue
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
                self.queue.run_scheduled()
                worked = self.queue.work()
            except Exception:  # keep serving; the next poll tries again
                log.exception("queue worker error")
                worked = 0
            if not worked:
                self._stop.wait(self.poll_s)
