"""`KnowledgeBase`: the one object the command line and the app talk to, for everything.

It wires the owners together and offers the product's verbs; it holds no state of its own beyond
them. The owners, each with its collaborators passed in explicitly:

- `SqliteCatalog` (kb.catalog): documents, versions, the job queue's rows with their progress, feedback.
- `BlobStore` (kb.storage): the stored originals.
- `ServingIndex` (kb.serving): the served index generation, its encoders, keyword vs hybrid, swaps.
- `Intake` (kb.intake): uploads, paths, deletions, group changes and re-indexes turned into jobs.
- `JobQueue` (kb.queue) with its `JobRunner` (kb.jobs): who works the queue, recovery, the jobs.
- `Answerer` (kb.answering) over a `Retriever` (kb.retrieval): search and answers.

Every read takes the actor: what a person may see is decided inside the index query (a payload filter
on the chunk's groups) and checked against the catalog, never by dropping results afterwards.
Presentation code (kb/cli, app_pages/) only calls these verbs.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Iterator, Sequence

from kb.access import Rights, can_change, can_see, rights_of
from kb.answering import Answerer, AnswerEvent
from kb.auth import (
    LOCAL_ADMIN, Actor, Client, NotAuthorized, PasswordGuard, is_admin, may_see, require_admin, visible_groups,
)
from kb.catalog import SqliteCatalog
from kb.config import Settings
from kb.errors import BadRequest, IndexBusy
from kb.audit import FeedbackFilter, audit_record, matching
from kb.feedback import feedback_for, to_csv
from kb.health import ComponentHealth, check
from kb.index import SearchFilter, VectorIndex, point_id
from kb.intake import Intake, Submitted
from kb.jobs import JobRunner, Progress
from kb.queue import JobQueue, busy_message
from kb.conversations import MAX_TITLE_CHARS, answer_from_json, answer_to_json, shown_documents, title_for
from kb.records import (
    Answer, AuditRecord, Chunk, Conversation, Document, DocumentFilter, FailedAttempt, Feedback, Job, Modes, Passage,
    ShownPassage, SyncReport, TextRecord, Turn, Version,
)
from kb.rendering import RenderedPage, RenderError, render_page
from kb.retrieval import Retriever
from kb.parsing import ParseSandbox
from kb.serving import ServingIndex
from kb.storage import BlobStore
from kb.sync import FolderSync, OnFile, SyncSchedule
from kb.uploads import eta_seconds, shown_since

__all__ = ["IndexBusy", "KnowledgeBase", "Submitted"]

log = logging.getLogger(__name__)


class KnowledgeBase:
    def __init__(self, settings: Settings):
        self.settings = settings
        data_dir = settings.data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        self.catalog = SqliteCatalog(data_dir / "catalog.sqlite3")
        self.blobs = BlobStore(data_dir / "originals")
        self.sandbox = ParseSandbox(settings.parse_timeout_s, settings.parse_memory_mb)
        self.serving = ServingIndex(settings, busy_message=lambda: busy_message(data_dir))
        self.intake = Intake(settings, self.catalog, self.blobs)
        runner = JobRunner(settings, self.catalog, self.blobs, self.sandbox, self.serving)
        self.queue = JobQueue(data_dir, self.catalog, self.blobs, self.serving, runner)
        self.syncer = FolderSync(settings, self.catalog, self.intake, self.queue)
        self.sync_schedule = SyncSchedule(self.syncer, settings)
        self.queue.scheduled.append(self.sync_schedule.run_due)
        self.password_guard = PasswordGuard()  # the app's admin sign-in, shared by every session
        self._answerer: tuple[int, Answerer] | None = None  # (serving generation it was built for, answerer)

    # opening and closing ---------------------------------------------------------------------
    def open_index(self) -> None:
        """Open the serving index to read (creating an empty one the first time)."""
        self.serving.open()

    @property
    def index(self) -> VectorIndex:
        return self.serving.index

    @property
    def warnings(self) -> list[str]:
        """How the served index differs from the configuration (dense model, chunk size)."""
        return list(self.serving.warnings)

    def close(self) -> None:
        """Release everything, even when saving the index fails (a full disk): that error is raised
        last, after the lease, the parse helper and the catalog are let go."""
        try:
            self.serving.close()
        finally:
            self.sandbox.close()
            self.queue.release()
            self.catalog.close()

    # the queue: any process submits, the holder of the index works it ----------------------
    def take_queue(self) -> bool:
        """Become the process that works the queue, if no other live process is. Recovers from crashes."""
        return self.queue.take()

    def work_queue(self, on_done: Callable[[Job], None] | None = None, progress: Progress | None = None) -> int:
        """Work queued jobs until none is left (only in the process that took the queue)."""
        return self.queue.work(on_done, progress)

    def wait(self, job_ids: Sequence[int], on_done: Callable[[Job], None], poll_s: float = 0.5) -> None:
        """Wait for another process to work these jobs, reporting each as it finishes."""
        self.queue.wait(job_ids, on_done, poll_s)

    def submit_paths(
        self, paths: Iterable[Path], *, actor: Actor = LOCAL_ADMIN, groups: Sequence[str] | None = None,
        uploader: str = "",
    ) -> list[Submitted]:
        return self.intake.submit_paths(paths, actor=actor, groups=groups, uploader=uploader)

    def sync_folder(
        self, folder: Path, *, actor: Actor = LOCAL_ADMIN, groups: Sequence[str] | None = None, delete: bool = False,
        on_file: OnFile | None = None,
    ) -> SyncReport:
        """Mirror a folder: new files added, changed ones as new versions, unchanged ones untouched (decided
        before anything is queued); with `delete`, the documents it added whose file is gone removed. See kb.sync."""
        return self.syncer.sync(folder, actor=actor, groups=groups, delete=delete, on_file=on_file)

    def run_scheduled(self) -> None:
        """What a long-lived worker does besides jobs, when due: the syncs of KB_SYNC_PATHS."""
        self.queue.run_scheduled()

    def last_syncs(self, actor: Actor) -> list[SyncReport]:
        """Each synced folder's last report (counts, outcome, error; no files), the most recent first."""
        require_admin(actor, self.settings, "reading the sync reports")
        return self.syncer.last_reports()

    def submit_upload(
        self, filename: str, data: BinaryIO, size: int, *, actor: Actor, groups: Sequence[str] | None = None
    ) -> Submitted:
        return self.intake.submit_upload(filename, data, size, actor=actor, groups=groups)

    def submit_uploads(
        self, files: Iterable[tuple[str, BinaryIO, int]], *, actor: Actor, groups: Sequence[str] | None = None,
        from_folder: bool = False,
    ) -> list[Submitted]:
        return self.intake.submit_uploads(files, actor=actor, groups=groups, from_folder=from_folder)

    def submit_delete(self, doc_id: str, actor: Actor) -> int:
        return self.intake.submit_delete(doc_id, actor)

    def set_groups(self, doc_id: str, groups: Sequence[str], actor: Actor) -> int:
        return self.intake.set_groups(doc_id, groups, actor)

    def submit_reindex(self, actor: Actor) -> int:
        return self.intake.submit_reindex(actor)

    def load_records(self, records: Iterable[TextRecord], progress: Progress | None = None) -> tuple[int, int]:
        """Fill an empty knowledge base with text records instead of files (evaluation corpora); see
        JobRunner.load_records. Returns (documents, chunks)."""
        if not self.queue.take():
            raise IndexBusy(busy_message(self.settings.data_dir))
        return self.queue.runner.load_records(records, progress)

    # job status, for any process -------------------------------------------------------------
    def jobs(self, job_ids: Sequence[int]) -> list[Job]:
        return self.catalog.jobs(job_ids)

    def job_progress(self, job_id: int) -> tuple[int, int] | None:
        """(done, total) of a running job that reports progress (re-index), whichever process runs it."""
        found = self.catalog.jobs([job_id])
        if not found or found[0].status != "running" or not found[0].total:
            return None
        return found[0].done, found[0].total

    def running_reindex(self) -> Job | None:
        """The re-index that is queued or running, if any."""
        return self.catalog.unfinished("reindex")

    def work_pending(self) -> bool:
        """Whether any job is queued or running (a page refreshes its lists meanwhile)."""
        return self.catalog.queued_count() > 0

    # a person's uploads: listed, estimated, cancelled, retried, cleared ------------------------
    # Jobs are someone's by their uploader's name (an anonymous app user is one person: "anonymous").
    # Only the submitter or an admin may act on a job; to anyone else it does not exist.
    def uploads(self, actor: Actor, *, everyone: bool = False) -> list[Job]:
        """The file jobs `actor` submitted that are unfinished, or finished in the last day and not cleared
        (kb.uploads); `everyone`: every person's (admins only)."""
        if everyone:
            require_admin(actor, self.settings, "listing everyone's uploads")
        return self.catalog.uploads(None if everyone else actor.name, shown_since())

    def uploads_eta(self, jobs: Sequence[Job]) -> float | None:
        """Seconds until the unfinished ones of these jobs are done, at the pace of their batches so far."""
        batches = sorted({job.batch or job.id for job in jobs if job.status != "done"})
        return eta_seconds(self.catalog.batches(batches))

    def _upload_of(self, job_id: int, actor: Actor, action: str) -> Job:
        found = self.catalog.jobs([job_id])
        job = found[0] if found else None
        if job is None or job.kind != "ingest" or not (job.uploader == actor.name or self.is_admin(actor)):
            raise NotAuthorized(f"{action}: there is no upload {job_id} of yours")  # the same for others' jobs
        return job

    def cancel_job(self, job_id: int, actor: Actor) -> str:
        """Cancel an upload: a waiting one never runs; a running one stops at its next stage and leaves the
        index and the catalog as they were (kb.jobs.JobCancelled). Returns what happened, in one line."""
        job = self._upload_of(job_id, actor, "cancelling an upload")
        state = self.catalog.cancel(job_id, f"cancelled by {actor.name} before it started")
        if state == "cancelled":
            if job.blob and not self.catalog.blob_in_use(job.blob):
                self.blobs.delete(job.blob)
            return f"{job.name}: cancelled before it started"
        if state == "requested":
            return f"{job.name}: stopping; nothing of it will be indexed unless it was already done"
        return f"{job.name} had already finished"

    def retry_job(self, job_id: int, actor: Actor) -> int:
        """Queue a failed or cancelled upload again from its stored original; returns the new job's id.
        The old job leaves the list. BadRequest when it did not fail or its file is no longer kept.

        It runs with the submitter's rights: their current ones when they retry it themselves, those it
        was submitted with when an admin retries someone else's."""
        job = self._upload_of(job_id, actor, "retrying an upload")
        if job.status != "done" or job.outcome not in ("failed", "cancelled"):
            raise BadRequest(f"{job.name} has not failed: only a failed or cancelled upload can be tried again")
        if not job.blob:  # refused before it was stored (over the size limit, unreadable)
            raise BadRequest(f"{job.name} was never stored on the server ({job.message}): upload the file again")
        if not self.blobs.exists(job.blob):
            raise BadRequest(f"{job.name} is no longer kept on the server: upload the file again")
        rights = (rights_of(actor, self.settings, job.uploader) if job.uploader == actor.name
                  else Rights(job.uploader, job.actor_groups, job.actor_admin))
        again = replace(
            job, id=0, uploader=rights.name, actor_groups=rights.groups, actor_admin=rights.admin,
            status="queued", outcome="", message="", attempts=0, created_at="", finished_at="", started_at="",
            done=0, total=0, batch=0, cancel_requested=False, cleared=False,
        )
        new_id = self.catalog.enqueue(again)
        self.catalog.clear([job.id])
        return new_id

    def clear_uploads(self, actor: Actor) -> int:
        """Take the actor's finished uploads off their list (they stay in the catalog); returns how many."""
        return self.catalog.clear([job.id for job in self.uploads(actor) if job.status == "done"])

    # how answers are made --------------------------------------------------------------------
    def modes(self) -> Modes:
        return Modes(self.serving.mode, self.settings.llm_model if self.settings.llm_enabled else None)

    def query_terms(self, text: str) -> set[int]:
        """The BM25 terms of a query, for highlighting the words a passage matched."""
        return self.serving.sparse.query_terms(text)

    def is_admin(self, actor: Actor) -> bool:
        return is_admin(actor, self.settings)

    def check_admin_password(self, given: str, client: Client) -> bool:
        """Whether `given` is the admin password (kb.auth.PasswordGuard slows down guessing)."""
        return self.password_guard.check(given, self.settings, client)

    # reading ---------------------------------------------------------------------------------
    def find_documents(self, name: str, *, actor: Actor) -> list[Document]:
        """The documents called `name` that the actor can see (names are unique only per viewer)."""
        rights = rights_of(actor, self.settings)
        return [d for d in self.catalog.named(name) if d.status != "deleting" and can_see(d, rights)]

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
        serving = self.serving
        return Retriever(
            index=lambda: serving.index, sparse=serving.sparse, dense=serving.query_dense,
            dense_weight=self.settings.dense_weight, is_current=self._servable,
        )

    @property
    def answerer(self) -> Answerer:
        """The answerer for the generation serving now (rebuilt after a swap: its encoders change)."""
        cached = self._answerer
        if cached is None or cached[0] != self.serving.generation:
            self.serving.open()  # first: the retriever's encoders come from the served generation
            llm = None
            if self.settings.llm_enabled:
                from kb.answering.llm import build_llm  # the LLM stack loads only when a model is configured

                llm = build_llm(self.settings)
            answerer = Answerer(
                self.retriever, query_terms=self.serving.sparse.query_terms, llm=llm,
                k=self.settings.top_k, min_relevance=self.settings.min_relevance,
            )
            cached = self._answerer = (self.serving.generation, answerer)
        return cached[1]

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
        """What to search for a follow-up question, given the earlier (query, answer) turns (each query what
        that turn searched for)."""
        return self.answerer.condense(question, history)

    def original(self, doc_id: str, *, actor: Actor) -> tuple[str, Callable[[], bytes]] | None:
        """The document's name and a reader of its stored original (its serving version), for download;
        None if the document is gone, not the actor's to see, or its original is no longer kept."""
        doc = self.document(doc_id, actor=actor)
        return self.version_original(doc_id, doc.version, actor=actor) if doc is not None else None

    def version_original(self, doc_id: str, version: int, *, actor: Actor) -> tuple[str, Callable[[], bytes]] | None:
        """The document's name and a reader of the stored original of one of its versions; None when the
        document is not the actor's to see or that original is no longer kept. The reader runs later (a
        download button reads when clicked): it checks again, and says so in one line when the document or
        its original has gone since."""
        doc = self.document(doc_id, actor=actor)
        sha = self.catalog.version_blob(doc_id, version) if doc is not None else ""
        if doc is None or not sha or not self.blobs.exists(sha):
            return None
        name = doc.name

        def read() -> bytes:
            if self.document(doc_id, actor=actor) is None:
                raise NotAuthorized(f"{name} is no longer there for you to download")
            try:
                return self.blobs.path(sha).read_bytes()
            except FileNotFoundError:
                raise BadRequest(f"the original of version {version} of {name} is no longer kept") from None

        return name, read

    def show(self, chunk_id: str, *, actor: Actor) -> ShownPassage:
        """The passage `chunk_id` with its document and version. Raises BadRequest when there is no such
        passage or the actor may not see its document: the same message, so nothing is learned."""
        missing = BadRequest(f"no passage {chunk_id!r} (or it is not yours to see)")
        point = point_id(chunk_id)
        chunk = self.serving.index.fetch([point]).get(point)
        doc = self.catalog.document(chunk.doc_id) if chunk is not None else None
        if chunk is None or doc is None or doc.status == "deleting" or not can_see(doc, rights_of(actor, self.settings)):
            raise missing
        return ShownPassage(chunk, doc, self.catalog.version_created(doc.doc_id, chunk.version))

    def surroundings(self, chunk_id: str, *, actor: Actor) -> tuple[Chunk | None, ShownPassage, Chunk | None]:
        """The passage with the passages before and after it in its document version (None at either end), to
        show it in place. Same rights as `show`."""
        shown = self.show(chunk_id, actor=actor)
        chunk = shown.chunk
        ids = {seq: point_id(f"{chunk.doc_id}:{chunk.version}:{seq}") for seq in (chunk.seq - 1, chunk.seq + 1) if seq >= 0}
        found = self.serving.index.fetch(list(ids.values()))
        before, after = (found.get(ids[seq]) if seq in ids else None for seq in (chunk.seq - 1, chunk.seq + 1))
        return before, shown, after

    def render_page(self, chunk_id: str, page: int | None, phrases: Sequence[str], *, actor: Actor) -> RenderedPage:
        """A page of the passage's PDF (its own version's original), drawn with `phrases` highlighted; the
        passage's page when `page` is None. Same rights as `show`; RenderError when it cannot be drawn."""
        shown = self.show(chunk_id, actor=actor)
        if shown.document.kind != "pdf":
            raise RenderError(f"{shown.document.name} is not a PDF: only PDF pages are drawn")
        sha = self.catalog.version_blob(shown.document.doc_id, shown.chunk.version)
        path = self.blobs.path(sha) if sha else None
        if path is None or not path.is_file():
            raise RenderError(f"the original of version {shown.chunk.version} of {shown.document.name} is no longer kept")
        return render_page(str(path), page or shown.chunk.page_start or 1, list(phrases))

    def version_of(self, doc_id: str, version: int, *, actor: Actor) -> tuple[Document, str] | None:
        """The document and the date its `version` was added, for a passage's card; None when the document is
        gone or not the actor's to see (a card never names what the actor may not see)."""
        doc = self.catalog.document(doc_id)
        if doc is None or doc.status == "deleting" or not can_see(doc, rights_of(actor, self.settings)):
            return None
        return doc, self.catalog.version_created(doc_id, version)

    # feedback --------------------------------------------------------------------------------
    def record_feedback(
        self, actor: Actor, question: str, query: str, answer: Answer, rating: int, comment: str = "",
        feedback_id: int = 0, answer_id: int = 0,
    ) -> int:
        """Store a rating (1 or -1) on an answer, or change the actor's earlier one; returns its id. With
        the answer's audit id (`record_answer`), the audit log shows the rating too."""
        record = feedback_for(answer, question, query, actor.name, rating, comment, feedback_id)
        if answer_id:
            self.catalog.rate_answer(answer_id, actor.name, record.rating, record.comment)
        return self.catalog.save_feedback(record)

    # the audit log -----------------------------------------------------------------------------
    def record_answer(self, actor: Actor, question: str, query: str, answer: Answer) -> int:
        """Keep the answer as it was shown to `actor` (kb.audit); returns its audit id."""
        return self.catalog.record_answer(audit_record(answer, question, query, actor.name))

    def recorded_answer(self, answer_id: int, *, actor: Actor) -> tuple[AuditRecord, dict[str, int | None]]:
        """A recorded answer for its permalink, with each cited document's current version (None: deleted).
        Only for those who may see every document it cites (and, for an answer citing none, its own user);
        admins see all. Raises BadRequest otherwise, the same as for an id that does not exist."""
        refused = BadRequest(f"no answer {answer_id} (or it is not yours to see)")
        found = self.catalog.answer(answer_id)
        if found is None:
            raise refused
        rights = rights_of(actor, self.settings)
        admin = is_admin(actor, self.settings)
        current: dict[str, int | None] = {}
        for cited in found.citations:
            doc = self.catalog.document(cited.doc_id)
            visible = doc is not None and doc.status != "deleting" and can_see(doc, rights)
            if not (visible or admin):
                raise refused
            current[cited.doc_id] = doc.version if visible and doc is not None else None
        if not found.citations and not admin and found.user != actor.name:
            raise refused
        return found, current

    # conversations ------------------------------------------------------------------------------
    def conversations(self, *, actor: Actor) -> list[Conversation]:
        """The actor's own conversations, the most recently used first (nobody else's, admins included)."""
        return self.catalog.conversations(actor.name)

    def _own(self, conversation_id: str, actor: Actor) -> Conversation:
        found = self.catalog.conversation(conversation_id)
        if found is None or found.user != actor.name:
            raise BadRequest(f"no conversation {conversation_id} of yours")
        return found

    def start_conversation(self, first_question: str, *, actor: Actor) -> str:
        return self.catalog.new_conversation(actor.name, title_for(first_question))

    def add_turn(self, conversation_id: str, turn: Turn, *, actor: Actor) -> None:
        self._own(conversation_id, actor)
        self.catalog.add_turn(conversation_id, turn.id, turn.question, turn.query, answer_to_json(turn.answer),
                              turn.answer_id)

    def conversation_turns(self, conversation_id: str, *, actor: Actor) -> list[Turn]:
        """The conversation's turns as they were shown, except that an answer showing a passage of a document
        the actor may no longer see (or that was deleted since) is withheld: only its question is returned."""
        self._own(conversation_id, actor)
        rights = rights_of(actor, self.settings)
        turns: list[Turn] = []
        for row in self.catalog.turn_rows(conversation_id):
            answer = answer_from_json(row["answer"])
            docs = [self.catalog.document(doc_id) for doc_id in shown_documents(answer)]
            withheld = not all(doc is not None and doc.status != "deleting" and can_see(doc, rights) for doc in docs)
            if withheld:
                answer = Answer(text="", mode=answer.mode, found=False)
            turns.append(Turn(row["turn_id"], row["question"], row["query"], answer, row["feedback_id"],
                              row["answer_id"], withheld))
        return turns

    def note_turn_feedback(self, conversation_id: str, turn: Turn, *, actor: Actor) -> None:
        self._own(conversation_id, actor)
        self.catalog.set_turn_feedback(conversation_id, turn.id, turn.feedback_id)

    def rename_conversation(self, conversation_id: str, title: str, *, actor: Actor) -> None:
        self._own(conversation_id, actor)
        title = " ".join(title.split())[:MAX_TITLE_CHARS]
        if not title:
            raise BadRequest("a conversation needs a name")
        self.catalog.rename_conversation(conversation_id, title)

    def delete_conversation(self, conversation_id: str, *, actor: Actor) -> None:
        """The conversation goes; its answers stay in the audit log (KB_AUDIT_DAYS decides how long)."""
        self._own(conversation_id, actor)
        self.catalog.delete_conversation(conversation_id)

    def audit(
        self, actor: Actor, since: str = "", user: str | None = None, limit: int | None = None, *,
        doc_id: str | None = None, feedback: FeedbackFilter = "any", text: str = "",
    ) -> list[AuditRecord]:
        """The recorded answers, newest first (admins only: they hold everyone's questions); `doc_id`,
        `feedback` and `text` narrow them as `kb.audit.matching` says."""
        require_admin(actor, self.settings, "reading the audit log")
        records = self.catalog.answers(since, user, None if (doc_id or feedback != "any" or text) else limit)
        return matching(records, doc_id, feedback, text)[:limit]

    def feedback_log(self, actor: Actor, limit: int | None = None) -> list[Feedback]:
        require_admin(actor, self.settings, "reading the feedback log")
        return self.catalog.feedback(limit)

    def feedback_csv(self, actor: Actor) -> str:
        require_admin(actor, self.settings, "exporting the feedback log")
        return to_csv(self.catalog.feedback())

    def health(self) -> list[ComponentHealth]:
        return check(self.serving, self.catalog, self.settings)

    # documents -------------------------------------------------------------------------------
    def documents(self, *, actor: Actor, where: DocumentFilter | None = None) -> list[Document]:
        """The documents the actor may see (kb.access), those `where` keeps. A document is what has a
        serving version (SqliteCatalog.served_documents): every page, command and count uses this."""
        rights = rights_of(actor, self.settings)
        return [
            d for d in self.catalog.served_documents() if can_see(d, rights) and (where is None or where.matches(d))
        ]

    def document(self, doc_id: str, *, actor: Actor) -> Document | None:
        """One document, if it is one (it serves a version) and the actor may see it."""
        doc = self.catalog.document(doc_id)
        if doc is None or doc.status != "ok" or doc.version < 1 or not can_see(doc, rights_of(actor, self.settings)):
            return None
        return doc

    def may_change(self, doc_id: str, *, actor: Actor) -> bool:
        """Whether the actor may replace, delete, re-ingest or re-label the document (kb.access.can_change):
        for pages to offer only what will be allowed; every action checks again."""
        doc = self.document(doc_id, actor=actor)
        return doc is not None and can_change(doc, rights_of(actor, self.settings))

    def _visible(self, doc_id: str, actor: Actor) -> Document:
        doc = self.document(doc_id, actor=actor)
        if doc is None:
            raise NotAuthorized(f"there is no document with id {doc_id!r}")
        return doc

    def versions(self, doc_id: str, *, actor: Actor) -> list[Version]:
        """Every version of a document the actor may see, newest first, each saying whether its original
        is still kept. NotAuthorized, the same as for a missing one, otherwise."""
        self._visible(doc_id, actor)
        return [replace(v, kept=bool(v.sha256) and self.blobs.exists(v.sha256)) for v in self.catalog.versions(doc_id)]

    def passages(self, doc_id: str, *, actor: Actor, limit: int = 5) -> list[Chunk]:
        """The first `limit` passages of the document's serving version, in order, as they are indexed:
        a preview. NotAuthorized for a document the actor may not see."""
        doc = self._visible(doc_id, actor)
        ids = [point_id(f"{doc.doc_id}:{doc.version}:{seq}") for seq in range(min(limit, doc.chunks))]
        found = self.serving.index.fetch(ids) if ids else {}
        return [found[i] for i in ids if i in found]

    def reingest(self, doc_id: str, actor: Actor) -> int:
        """Queue the serving version's kept original again, as the document's next version (kb.intake)."""
        return self.intake.submit_reingest(doc_id, actor)

    # failed uploads ----------------------------------------------------------------------------
    def failed_attempts(self, *, actor: Actor) -> list[FailedAttempt]:
        """The failed uploads the actor may see, newest first: admins every one, others their own. Each says
        whether its original is kept (so it can be retried)."""
        rights = rights_of(actor, self.settings)
        return [
            replace(a, kept=bool(a.blob) and self.blobs.exists(a.blob))
            for a in self.catalog.failed_attempts() if rights.admin or a.uploader == rights.name
        ]

    def retry_attempt(self, attempt_id: int, actor: Actor) -> int:
        """Queue a failed upload's kept original again (kb.intake.Intake.retry); returns the job's id."""
        return self.intake.retry(attempt_id, actor)

    def dismiss_attempt(self, attempt_id: int, actor: Actor) -> FailedAttempt:
        """Forget a failed upload (and its original, unless something else uses it); the warning it left on
        its document goes with its last attempt. A document a re-index could no longer parse, whose attempt
        this is, goes with it if the actor may change it."""
        attempt = self.intake.attempt(attempt_id, actor)
        husk = self.catalog.document(attempt.doc_id) if attempt.doc_id else None
        drop = husk is not None and husk.version == 0 and can_change(husk, rights_of(actor, self.settings))
        for blob in self.catalog.remove_attempt(attempt.id, drop_husk=drop):
            self.blobs.delete(blob)
        return attempt

    def stats(self) -> dict[str, Any]:
        docs = self.catalog.served_documents()
        index = self.index
        modes = self.modes()
        return {
            "documents": len(docs),
            "failed_uploads": len(self.catalog.failed_attempts()),
            "chunks": index.count(),
            "unoptimized_chunks": index.unoptimized,
            "catalog_chunks": sum(d.chunks for d in docs),
            "pages": sum(d.pages or 0 for d in docs),
            "originals_bytes": self.blobs.size_bytes(),
            "index": self.serving.describe(),
            "search_mode": modes.search,
            "dense_model": index.spec.dense_model,
            "bm25_avg_len": round(index.spec.bm25_avg_len, 1),
            "answer_mode": modes.answers,
            "llm_model": modes.llm_model,
            "queued_jobs": self.catalog.queued_count(),
            "last_reindex": self.catalog.get_meta("last_reindex") or None,
            "warnings": self.warnings,
        }
