"""`KnowledgeBase`: the one object the command line and the app talk to.

It owns the catalog, the stored originals, the encoders, the serving index and the answerer, and
offers the product's verbs: submit files, work the queue, search, ask, list, delete, re-index,
report. Presentation code (cli.py, the Streamlit pages) only calls these.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, BinaryIO, Callable, Iterable, Iterator, Sequence

from kb.access import Rights, can_change, can_see, check_groups, refusal, rights_of
from kb.answering import Answerer, AnswerEvent, build_llm
from kb.auth import (
    LOCAL_ADMIN,
    Actor,
    NotAuthorized,
    PasswordGuard,
    may_see,
    require_admin,
    visible_groups,
)
from kb.catalog import SqliteCatalog
from kb.config import Settings
from kb.embedding import (
    Bm25Encoder,
    DenseEmbedder,
    EmbeddingUnavailable,
    make_dense_embedder,
)
from kb.errors import IndexBusy
from kb.feedback import feedback_for, to_csv
from kb.health import ComponentHealth, check
from kb.index import (
    IndexedChunk,
    IndexLocked,
    IndexSpec,
    IndexStore,
    SearchFilter,
    VectorIndex,
    open_index_store,
)
from kb.jobs import JobRunner, Progress, initial_avg_len
from kb.records import (
    Answer,
    Chunk,
    Document,
    Feedback,
    Job,
    ParsedFile,
    Passage,
    TextRecord,
)
from kb.retrieval import Retriever
from kb.sandbox import ParseSandbox
from kb.storage import BlobStore, DataDirError, display_name

log = logging.getLogger(__name__)

RETIRED_INDEX_GRACE_S = 10.0  # how long a replaced index stays open for searches already running on it


@dataclass(frozen=True)
class Submitted:
    """A file handed to the queue: the job that will ingest it and the name it will be known by."""

    job_id: int
    name: str


class KnowledgeBase:
    def __init__(self, settings: Settings):
        self.settings = settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.catalog = SqliteCatalog(settings.data_dir / "catalog.sqlite3")
        self.blobs = BlobStore(settings.data_dir / "originals")
        self.max_bytes = int(settings.max_file_mb * 1024 * 1024)
        self.warnings: list[str] = []
        self._spec_warnings: list[str] = []  # the part of `warnings` about the serving index (see _check_spec)
        self.password_guard = PasswordGuard()  # the app's admin sign-in, shared by every session
        self.index_store: IndexStore | None = None
        self._index: VectorIndex | None = None
        self.dense: DenseEmbedder | None = None
        self._dense_tried = False
        self.sparse = Bm25Encoder(avg_len=initial_avg_len(settings.chunk_words))
        self._lease: IO[str] | None = None
        self._answerer: Answerer | None = None
        self._retiring: list[tuple[threading.Timer, VectorIndex]] = []
        self._progress: dict[int, tuple[int, int]] = {}  # job id -> (done, total) while it runs here
        self.sandbox = ParseSandbox(settings.parse_timeout_s, settings.parse_memory_mb)
        self.runner = JobRunner(self)

    # opening ---------------------------------------------------------------------------------
    def open_index(self) -> None:
        """Open the serving index (creating an empty one the first time)."""
        if self._index is not None:
            return
        if self.dense is None and not self._dense_tried:  # once: a retry after a failed open reuses it
            self._dense_tried = True
            try:
                self.dense = make_dense_embedder(self.settings)
            except EmbeddingUnavailable as exc:
                self.warnings.append(f"dense embeddings off: {exc}; using keyword search only")
        store = open_index_store(self.settings)
        try:
            index = store.open_current()
        except IndexLocked as exc:
            raise IndexBusy(self._busy_message()) from exc
        if index is None:
            index = store.create(self._fresh_spec())
            store.promote(index)
        self.index_store, self._index = store, index
        self.sparse = Bm25Encoder(avg_len=index.spec.bm25_avg_len)
        self._check_spec()

    def _check_spec(self) -> None:
        """Warn where the serving index was built differently from the configuration; the warnings are
        replaced whenever the index is (a re-index resolves them)."""
        index, settings = self.index, self.settings
        found = []
        if self._dense_mismatch():
            found.append(
                f"the index was built with dense model {index.spec.dense_model or 'none'} but "
                f"{self.dense.model_id if self.dense else 'none'} is configured: searching by keywords "
                "only until `kb reindex` rebuilds it"
            )
        if index.spec.chunk_words is not None and index.spec.chunk_words != settings.chunk_words:
            found.append(
                f"the index holds chunks of about {index.spec.chunk_words} words but KB_CHUNK_WORDS is "
                f"{settings.chunk_words}: new uploads use {settings.chunk_words}; re-index to apply it to all"
            )
        self.warnings = [w for w in self.warnings if w not in self._spec_warnings] + found
        self._spec_warnings = found

    def _fresh_spec(self) -> IndexSpec:
        return IndexSpec(
            dense_model=self.dense.model_id if self.dense else None,
            dense_dim=self.dense.dim if self.dense else None,
            bm25_avg_len=initial_avg_len(self.settings.chunk_words),
            chunk_words=self.settings.chunk_words,
        )

    def _dense_mismatch(self) -> bool:
        configured = self.dense.model_id if self.dense else None
        return self.index is not None and self.index.spec.dense_model != configured

    @property
    def index(self) -> VectorIndex:
        if self._index is None:
            self.open_index()
        assert self._index is not None
        return self._index

    @property
    def search_mode(self) -> str:
        weighed = self.settings.dense_weight > 0  # KB_DENSE_WEIGHT=0 turns a weak model off without a re-index
        return "hybrid" if self.dense and weighed and not self._dense_mismatch() else "keyword"

    def swap_index(self, new_index: VectorIndex) -> None:
        """Serve `new_index` from now on (queries in flight finish on the old one)."""
        assert self.index_store is not None
        self.index_store.promote(new_index)
        old, self._index = self._index, new_index
        self.sparse = Bm25Encoder(avg_len=new_index.spec.bm25_avg_len)
        self._answerer = None
        self._check_spec()
        if old is not None and old is not new_index:
            # Searches that picked up the old index a moment ago must be able to finish on it.
            timer = threading.Timer(RETIRED_INDEX_GRACE_S, old.close)
            timer.daemon = True
            timer.start()
            self._retiring.append((timer, old))

    def close(self) -> None:
        """Release everything, even when saving the index fails (a full disk): that error is raised
        last, after the lease, the parse helper and the catalog are let go."""
        try:
            for timer, retired in self._retiring:
                timer.cancel()
                retired.close()
            self._retiring.clear()
            if self._index is not None:
                index, self._index = self._index, None
                index.close()
        finally:
            self.sandbox.close()
            if self._lease is not None:
                self._lease.close()
                self._lease = None
            self.catalog.close()

    # the queue: any process submits, the holder of the index works it ----------------------
    def take_queue(self) -> bool:
        """Become the process that works the queue, if no other live process is. Recovers from crashes."""
        if self._lease is not None:
            return True
        lease = open(self.settings.data_dir / "worker.lock", "a+")
        try:
            fcntl.flock(lease, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lease.close()
            return False
        try:
            self.open_index()
        except IndexBusy:  # a short-lived reader has the embedded index open; try again later
            lease.close()
            return False
        except BaseException:
            lease.close()
            raise
        lease.seek(0)
        lease.truncate()
        lease.write(str(os.getpid()))
        lease.flush()
        self._lease = lease
        self._recover()
        return True

    def _busy_message(self) -> str:
        try:
            pid = (self.settings.data_dir / "worker.lock").read_text().strip()
        except OSError:
            pid = "?"
        return (
            f"the index is open in another kb process (pid {pid}, for example the app). "
            "Use the app, stop that process, or configure a Qdrant server (KB_QDRANT_URL)."
        )

    def _recover(self) -> None:
        """Make the catalog and the index agree again after a crash."""
        for job in self.catalog.requeue_interrupted():
            log.warning("job %s (%s %s) was interrupted; queued again", job.id, job.kind, job.name)
        for doc_id, version in self.catalog.versions_in_progress():
            self.catalog.abort_version(doc_id, version, "interrupted before it was indexed")
        known = {d.doc_id: d for d in self.catalog.documents()}
        for doc_id, versions in self.index.document_versions().items():
            doc = known.get(doc_id)
            if doc is None or doc.status == "deleting" or doc.version not in versions:
                self.index.delete_document(doc_id)
            elif versions != {doc.version}:  # a version cut short by a crash, or an old one left behind
                self.index.delete_other_versions(doc_id, doc.version)
        for doc in known.values():
            if doc.status == "deleting":
                for blob in self.catalog.remove_document(doc.doc_id):
                    self.blobs.delete(blob)
        self.blobs.remove_incoming()

    def submit_paths(
        self, paths: Iterable[Path], *, actor: Actor = LOCAL_ADMIN, groups: Sequence[str] | None = None,
        uploader: str = "",
    ) -> list[Submitted]:
        """Store each file (folders recursively) and queue it; the name is its path inside the folder.

        Files on this machine are added by its owner unless `actor` says otherwise (`kb ingest --user`);
        `uploader` is the name kept as owner and uploader instead of the actor's. `groups` sets the
        documents' groups (None keeps an existing document's; a new one is for everyone)."""
        rights = rights_of(actor, self.settings, uploader)
        submitted = []
        for path, name in iter_files(paths):
            try:
                size = path.stat().st_size
            except OSError as exc:
                job = _refused(_ingest_job(name, 0, rights, groups), f"cannot read the file: {exc.strerror}")
                submitted.append(Submitted(self.catalog.enqueue(job), name))
                continue
            submitted.append(self._submit(name, lambda p=path: open(p, "rb"), size, rights, groups))
        return submitted

    def submit_upload(
        self, filename: str, data: BinaryIO, size: int, *, actor: Actor, groups: Sequence[str] | None = None
    ) -> Submitted:
        """Store an uploaded file and queue it, with the uploader's rights. The file name is metadata, never a path."""
        return self._submit(display_name(filename), lambda: data, size, rights_of(actor, self.settings), groups)

    def _submit(
        self, name: str, opener: Callable[[], BinaryIO], size: int, rights: Rights, groups: Sequence[str] | None
    ) -> Submitted:
        job = _ingest_job(name, size, rights, groups)
        if size > self.max_bytes:
            reason = f"file is {size / 2**20:.1f} MB, over the {self.settings.max_file_mb:g} MB limit"
            job = _refused(job, reason)
        else:
            try:
                with opener() as stream:
                    sha, stored = self.blobs.put_stream(stream)
                job = replace(job, blob=sha, size=stored)
            except DataDirError as exc:  # our side: the data directory is full or read-only
                job = _refused(job, str(exc))
            except OSError as exc:
                job = _refused(job, f"cannot read the file: {exc.strerror or exc}")
        return Submitted(self.catalog.enqueue(job), name)

    def submit_uploads(
        self, files: Iterable[tuple[str, BinaryIO, int]], *, actor: Actor, groups: Sequence[str] | None = None,
        from_folder: bool = False,
    ) -> list[Submitted]:
        """Store uploaded (name, data, size) files and queue them.

        A browser sends a folder's files as "folder/sub/file": like `kb ingest FOLDER`, each is named
        by its path inside the folder, and hidden files and folders (.git, .DS_Store) are skipped.
        """
        rights = rights_of(actor, self.settings)
        submitted = []
        for filename, data, size in files:
            if not from_folder:
                submitted.append(self._submit(display_name(filename), lambda d=data: d, size, rights, groups))
                continue
            inside = [part for part in filename.replace("\\", "/").split("/") if part][1:]
            if any(part.startswith(".") for part in inside):
                continue
            name = display_name("/".join(inside) or filename, keep_folders=True)
            submitted.append(self._submit(name, lambda d=data: d, size, rights, groups))
        return submitted

    def find_documents(self, name: str, *, actor: Actor) -> list[Document]:
        """The documents called `name` that the actor can see (names are unique only per viewer)."""
        rights = rights_of(actor, self.settings)
        return [d for d in self.catalog.named(name) if d.status != "deleting" and can_see(d, rights)]

    def _changeable(self, doc_id: str, actor: Actor, action: str) -> Document:
        """The document, if the actor may change it; the same refusal whether it is missing or hidden."""
        rights = rights_of(actor, self.settings)
        doc = self.catalog.document(doc_id)
        if doc is None or doc.status == "deleting" or not can_see(doc, rights):
            raise NotAuthorized(f"{action}: there is no document with id {doc_id!r}")
        if not can_change(doc, rights):
            raise refusal(doc, action)
        return doc

    def submit_delete(self, doc_id: str, actor: Actor) -> int:
        """Queue the deletion of a document by id: admins, and its owner (kb.access)."""
        doc = self._changeable(doc_id, actor, "deleting a document")
        return self.catalog.enqueue(Job(id=0, kind="delete", name=doc.name, doc_id=doc.doc_id))

    def set_groups(self, doc_id: str, groups: Sequence[str], actor: Actor) -> int:
        """Change who may see a document (empty: everyone), at once for every version and in every read.

        The catalog changes now, and searches check it; the queued job updates the index's copy, so
        the index's own filter agrees a moment later. Returns that job's id."""
        doc = self._changeable(doc_id, actor, "changing who sees a document")
        cleaned = check_groups(groups, rights_of(actor, self.settings))
        self.catalog.set_groups(doc.doc_id, cleaned)
        return self.catalog.enqueue(Job(id=0, kind="groups", name=doc.name, doc_id=doc.doc_id))

    def submit_reindex(self, actor: Actor) -> int:
        require_admin(actor, self.settings, "re-indexing")
        return self.catalog.enqueue(Job(id=0, kind="reindex"))

    def job_progress(self, job_id: int) -> tuple[int, int] | None:
        """(done, total) of a job this process is running and that reports progress (re-index)."""
        return self._progress.get(job_id)

    def work_queue(self, on_done: Callable[[Job], None] | None = None, progress: Progress | None = None) -> int:
        """Work queued jobs until none is left (only in the process that took the queue)."""
        if not self.take_queue():
            return 0
        worked = 0
        while (job := self.catalog.claim_next()) is not None:
            self.runner.run(job, self._tracked(job.id, progress))
            self._progress.pop(job.id, None)
            worked += 1
            if on_done:
                on_done(self.catalog.jobs([job.id])[0])
        if worked:
            self.optimize_if_due()
        return worked

    def optimize_if_due(self) -> bool:
        """Swap in an optimized copy of the index once KB_OPTIMIZE_AFTER chunks were written since it was
        last optimized: new chunks sit in a segment searched by brute force, slower as it grows. Runs in
        the queue's worker, so no job writes meanwhile; chat keeps searching the serving index."""
        index = self._index
        if index is None or self.index_store is None or index.unoptimized < self.settings.optimize_after:
            return False
        try:
            compacted = self.index_store.compact(index)
        except Exception as exc:  # a full disk, say: the serving index is untouched and still complete
            log.warning("could not optimize the index: %s", exc)
            return False
        if compacted is None:
            return False
        self.swap_index(compacted)
        return True

    def _tracked(self, job_id: int, progress: Progress | None) -> Progress:
        def report(done: int, total: int) -> None:
            self._progress[job_id] = (done, total)
            if progress:
                progress(done, total)

        return report

    def wait(self, job_ids: Sequence[int], on_done: Callable[[Job], None], poll_s: float = 0.5) -> None:
        """Wait for another process to work these jobs, reporting each as it finishes."""
        pending = set(job_ids)
        while pending:
            for job in self.catalog.jobs(sorted(pending)):
                if job.status == "done":
                    pending.discard(job.id)
                    on_done(job)
            if pending:
                if self.take_queue():  # the other process went away: finish the work here
                    self.work_queue(on_done=lambda j: (pending.discard(j.id), on_done(j)) if j.id in pending else None)
                else:
                    time.sleep(poll_s)

    def parse(self, path: Path, name: str) -> ParsedFile:
        """Parse a stored original in the helper process, bounded in time and memory (hostile files exist)."""
        return self.sandbox.parse(path, name, self.max_bytes)

    def load_records(self, records: Iterable[TextRecord], progress: Progress | None = None) -> tuple[int, int]:
        """Fill an empty knowledge base with text records instead of files (evaluation corpora); see
        JobRunner.load_records. Returns (documents, chunks)."""
        if not self.take_queue():
            raise IndexBusy(self._busy_message())
        return self.runner.load_records(records, progress)

    # encoding --------------------------------------------------------------------------------
    def encode(self, chunks: list[Chunk], sparse: Bm25Encoder | None = None) -> list[IndexedChunk]:
        texts = [c.indexed_text for c in chunks]
        sparse_vectors = (sparse or self.sparse).encode_documents(texts)
        dense_vectors: list[list[float] | None] = [None] * len(chunks)
        if self.dense is not None and (sparse is not None or not self._dense_mismatch()):
            dense_vectors = list(self.dense.embed_documents(texts))
        return [IndexedChunk(c, s, d) for c, s, d in zip(chunks, sparse_vectors, dense_vectors)]

    # reading ---------------------------------------------------------------------------------
    def _servable(self, chunks: list[Chunk], flt: SearchFilter | None) -> list[bool]:
        """Whether each chunk is of its document's serving version and, by the catalog's word, visible
        under `flt`: the index filters by the groups it holds, and this catches a change of groups
        that has not reached the index yet (KnowledgeBase.set_groups)."""
        serving = self.catalog.serving(sorted({c.doc_id for c in chunks}))
        visible = flt.groups if flt is not None else None
        return [
            c.doc_id in serving and serving[c.doc_id][0] == c.version and may_see(serving[c.doc_id][1], visible)
            for c in chunks
        ]

    @property
    def retriever(self) -> Retriever:
        dense = self.dense if self.search_mode == "hybrid" else None
        return Retriever(
            index=lambda: self.index, sparse=self.sparse, dense=dense, dense_weight=self.settings.dense_weight,
            is_current=self._servable,
        )

    @property
    def answerer(self) -> Answerer:
        if self._answerer is None:
            llm = build_llm(self.settings) if self.settings.llm_enabled else None
            self._answerer = Answerer(
                self.retriever, query_terms=self.sparse.query_terms, llm=llm,
                k=self.settings.top_k, min_relevance=self.settings.min_relevance,
            )
        return self._answerer

    # Every read takes the actor: what a person may see is decided inside the index query (a payload
    # filter on the chunk's groups), never by dropping results afterwards.
    def search(self, query: str, k: int = 5, doc_ids: Sequence[str] | None = None, *, actor: Actor) -> list[Passage]:
        return self.retriever.search(query, k=k, flt=self._filter(actor, doc_ids))

    def ask(self, question: str, doc_ids: Sequence[str] | None = None, *, actor: Actor) -> Answer:
        return self.answerer.ask(question, flt=self._filter(actor, doc_ids))

    def stream(self, question: str, doc_ids: Sequence[str] | None = None, *, actor: Actor) -> Iterator[AnswerEvent]:
        return self.answerer.stream(question, flt=self._filter(actor, doc_ids))

    def _filter(self, actor: Actor, doc_ids: Sequence[str] | None) -> SearchFilter | None:
        groups = visible_groups(actor, self.settings)
        if groups is None and not doc_ids:
            return None
        return SearchFilter(doc_ids=tuple(doc_ids) if doc_ids else None, groups=groups)

    def condense(self, question: str, history: Sequence[tuple[str, str]]) -> str:
        """What to search for a follow-up question, given the earlier (question, answer) turns."""
        return self.answerer.condense(question, history)

    def original(self, doc_id: str, *, actor: Actor) -> tuple[str, Path] | None:
        """The document's name and stored original (its serving version), for download; None if gone
        or not the actor's to see."""
        doc = self.catalog.document(doc_id)
        if doc is None or doc.status != "ok" or not doc.sha256:
            return None
        if not can_see(doc, rights_of(actor, self.settings)):
            return None
        path = self.blobs.path(doc.sha256)
        return (doc.name, path) if path.is_file() else None

    # feedback --------------------------------------------------------------------------------
    def record_feedback(
        self, actor: Actor, question: str, query: str, answer: Answer, rating: int, comment: str = "",
        feedback_id: int = 0,
    ) -> int:
        """Store a rating (1 or -1) on an answer, or change the actor's earlier one; returns its id."""
        record = feedback_for(answer, question, query, actor.name, rating, comment, feedback_id)
        return self.catalog.save_feedback(record)

    def feedback_log(self, actor: Actor, limit: int | None = None) -> list[Feedback]:
        require_admin(actor, self.settings, "reading the feedback log")
        return self.catalog.feedback(limit)

    def feedback_csv(self, actor: Actor) -> str:
        require_admin(actor, self.settings, "exporting the feedback log")
        return to_csv(self.catalog.feedback())

    def health(self) -> list[ComponentHealth]:
        return check(self)

    def documents(self, *, actor: Actor) -> list[Document]:
        visible = visible_groups(actor, self.settings)
        return [doc for doc in self.catalog.documents() if may_see(doc.groups, visible)]

    def stats(self) -> dict:
        docs = self.catalog.documents()
        index = self.index
        return {
            "documents": sum(1 for d in docs if d.status == "ok"),
            "failed_documents": sum(1 for d in docs if d.status == "failed"),
            "chunks": index.count(),
            "unoptimized_chunks": index.unoptimized,
            "catalog_chunks": sum(d.chunks for d in docs if d.status == "ok"),
            "pages": sum(d.pages or 0 for d in docs if d.status == "ok"),
            "originals_bytes": self.blobs.size_bytes(),
            "index": self.index_store.describe() if self.index_store else {},
            "search_mode": self.search_mode,
            "dense_model": index.spec.dense_model,
            "bm25_avg_len": round(index.spec.bm25_avg_len, 1),
            "answer_mode": f"llm: {self.settings.llm_model}" if self.settings.llm_enabled else "extractive",
            "queued_jobs": self.catalog.queued_count(),
            "last_reindex": self.catalog.get_meta("last_reindex") or None,
            "warnings": list(self.warnings),
        }


def _ingest_job(name: str, size: int, rights: Rights, groups: Sequence[str] | None) -> Job:
    return Job(
        id=0, kind="ingest", name=name, size=size, uploader=rights.name, actor_groups=rights.groups,
        actor_admin=rights.admin, groups=None if groups is None else tuple(groups),
    )


def _refused(job: Job, reason: str) -> Job:
    return replace(job, outcome="failed", message=reason)


def iter_files(paths: Iterable[Path]) -> Iterator[tuple[Path, str]]:
    """(file, identity) for each file; a folder's files are named by their path inside it.

    Hidden files and folders (.git, .DS_Store) are skipped; symbolic links are not followed out of
    the folder, so a link cannot pull in files from elsewhere.
    """
    for path in paths:
        if path.is_dir():
            root = path.resolve()
            for file in sorted(path.rglob("*")):
                relative = file.relative_to(path)
                if any(part.startswith(".") for part in relative.parts) or not file.is_file():
                    continue
                if file.is_symlink() and not file.resolve().is_relative_to(root):
                    continue
                yield file, display_name(relative.as_posix(), keep_folders=True)
        else:
            yield path, display_name(path.name)
