"""Intake: files, deletions, group changes and re-indexes handed to the job queue.

Every change to the index is a job. Intake stores an original (content-addressed, kb.storage) and
queues the job with the submitter's rights, or refuses at once what cannot be accepted (over the size
limit, unreadable, a document the submitter may not change); the job itself runs later in whichever
process works the queue (kb.queue), so submitting never needs the index.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

from kb.access import Rights, can_change, can_see, check_groups, refusal, rights_of
from kb.auth import LOCAL_ADMIN, Actor, NotAuthorized, require_admin
from kb.catalog import SqliteCatalog
from kb.config import Settings
from kb.errors import BadRequest
from kb.records import Document, FailedAttempt, Job
from kb.storage import BlobStore, DataDirError, display_name


@dataclass(frozen=True)
class Submitted:
    """A file handed to the queue: the job that will ingest it and the name it will be known by."""

    job_id: int
    name: str


class Intake:
    """Turns what people hand in into queued jobs, judged by kb.access as they submit."""

    def __init__(self, settings: Settings, catalog: SqliteCatalog, blobs: BlobStore):
        self.settings = settings
        self.catalog = catalog
        self.blobs = blobs
        self.max_bytes = int(settings.max_file_mb * 1024 * 1024)

    def submit_paths(
        self, paths: Iterable[Path], *, actor: Actor = LOCAL_ADMIN, groups: Sequence[str] | None = None,
        uploader: str = "",
    ) -> list[Submitted]:
        """Store each file (folders recursively) and queue it; the name is its path inside the folder.

        Files on this machine are added by its owner unless `actor` says otherwise (`kb ingest --user`);
        `uploader` is the name kept as owner and uploader instead of the actor's. `groups` sets the
        documents' groups (None keeps an existing document's; a new one is for everyone)."""
        rights = rights_of(actor, self.settings, uploader)
        submitted: list[Submitted] = []
        for path, name in iter_files(paths):
            batch = submitted[0].job_id if submitted else 0  # files handed in together: one batch, for its ETA
            try:
                size = path.stat().st_size
            except OSError as exc:
                job = _refused(_ingest_job(name, 0, rights, groups, batch), f"cannot read the file: {exc.strerror}")
                submitted.append(Submitted(self.catalog.enqueue(job), name))
                continue
            submitted.append(self._submit(name, _opener(path), size, rights, groups, batch))
        return submitted

    def submit_file(
        self, path: Path, name: str, size: int, *, actor: Actor = LOCAL_ADMIN, groups: Sequence[str] | None = None
    ) -> Submitted:
        """Store one file of `size` bytes (as listed) under a given document name and queue it: kb.sync
        names a folder's files itself. A file that cannot be read becomes a refused job, as in submit_paths."""
        return self._submit(name, _opener(path), size, rights_of(actor, self.settings), groups)

    def submit_upload(
        self, filename: str, data: BinaryIO, size: int, *, actor: Actor, groups: Sequence[str] | None = None
    ) -> Submitted:
        """Store an uploaded file and queue it, with the uploader's rights. The file name is metadata, never a path."""
        return self._submit(display_name(filename), lambda: data, size, rights_of(actor, self.settings), groups)

    def _submit(
        self, name: str, opener: Callable[[], BinaryIO], size: int, rights: Rights, groups: Sequence[str] | None,
        batch: int = 0,
    ) -> Submitted:
        job = _ingest_job(name, size, rights, groups, batch)
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
        submitted: list[Submitted] = []
        for filename, data, size in files:
            batch = submitted[0].job_id if submitted else 0
            if not from_folder:
                submitted.append(self._submit(display_name(filename), _given(data), size, rights, groups, batch))
                continue
            inside = [part for part in filename.replace("\\", "/").split("/") if part][1:]
            if any(part.startswith(".") for part in inside):
                continue
            name = display_name("/".join(inside) or filename, keep_folders=True)
            submitted.append(self._submit(name, _given(data), size, rights, groups, batch))
        return submitted

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

    def submit_reingest(self, doc_id: str, actor: Actor) -> int:
        """Queue the document's serving version's kept original to be ingested again, as its next version
        (after a parser or chunking change, say): admins and the owner. Refused when it is no longer kept."""
        doc = self._changeable(doc_id, actor, "re-ingesting a document")
        if doc.version < 1 or not doc.sha256 or not self.blobs.exists(doc.sha256):
            raise BadRequest(f"the original of {doc.name} is no longer kept: upload the file again")
        rights = rights_of(actor, self.settings)
        job = replace(_ingest_job(doc.name, doc.size, rights, None), blob=doc.sha256, doc_id=doc.doc_id)
        return self.catalog.enqueue(job)

    def attempt(self, attempt_id: int, actor: Actor) -> FailedAttempt:
        """A failed attempt the actor may see and act on: admins every one, others their own uploads;
        the same refusal whether it does not exist or is someone else's."""
        rights = rights_of(actor, self.settings)
        found = self.catalog.failed_attempt(attempt_id)
        if found is None or not (rights.admin or found.uploader == rights.name):
            raise NotAuthorized(f"there is no failed upload {attempt_id}")
        return replace(found, kept=bool(found.blob) and self.blobs.exists(found.blob))

    def retry(self, attempt_id: int, actor: Actor) -> int:
        """Queue a failed upload's kept original again, with the rights it was submitted with (the retry
        of an admin does not make the file the admin's), as a version of the document it was meant for
        when that still exists. The attempt goes; if the file fails again, a new attempt says why."""
        attempt = self.attempt(attempt_id, actor)
        if not attempt.kept:
            raise BadRequest(f"{attempt.name} was not kept (it was refused before it was stored): upload it again")
        if attempt.job_id:
            rights = Rights(attempt.uploader, attempt.actor_groups, attempt.actor_admin)
        else:  # recorded without a submitter (a re-index failure, an earlier release): the one retrying
            rights = rights_of(actor, self.settings)
        target = self.catalog.document(attempt.doc_id) if attempt.doc_id else None
        doc_id = target.doc_id if target is not None and target.status != "deleting" else ""
        groups = None if doc_id else attempt.groups
        job = replace(_ingest_job(attempt.name, attempt.size, rights, groups), blob=attempt.blob, doc_id=doc_id)
        if self.catalog.take_attempt(attempt.id) is None:
            raise NotAuthorized(f"there is no failed upload {attempt_id}")  # retried or dismissed meanwhile
        try:
            return self.catalog.enqueue(job)
        except BaseException:
            self.catalog.record_attempt(replace(job, id=attempt.job_id), attempt.reason, attempt.doc_id)
            raise

    def submit_reindex(self, actor: Actor) -> int:
        require_admin(actor, self.settings, "re-indexing")
        return self.catalog.enqueue(Job(id=0, kind="reindex"))


def _opener(path: Path) -> Callable[[], BinaryIO]:
    """Opens the file only when it is stored, so a batch never holds every file open."""
    return lambda: open(path, "rb")


def _given(data: BinaryIO) -> Callable[[], BinaryIO]:
    """An opener for a stream already open (an upload)."""
    return lambda: data


def _ingest_job(name: str, size: int, rights: Rights, groups: Sequence[str] | None, batch: int = 0) -> Job:
    return Job(
        id=0, kind="ingest", name=name, size=size, uploader=rights.name, actor_groups=rights.groups,
        actor_admin=rights.admin, groups=None if groups is None else tuple(groups), batch=batch,
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
