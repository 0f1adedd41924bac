"""Keeping a folder in sync with the knowledge base: `kb sync PATH`, and the worker's KB_SYNC_PATHS.

A sync lists the folder (hidden files and folders skipped, symbolic links not followed out of it, nor
into folders: a linked folder inside it is synced where it really is) and decides for each file whether
it is new, changed or unchanged *before* queuing anything: size and mtime against what the last sync
saw, else the sha256 against the catalog's serving version. Only new and changed files become
ordinary ingest jobs (kb.intake, kb.jobs), so an unchanged folder costs a directory listing.

With `delete`, the documents this sync added whose file is gone are deleted. The catalog's
`synced_files` table says which documents those are (by folder and name), so a document of the same
name that someone uploaded by hand, or that existed before the sync found it, is never deleted.

Nothing is deleted when the folder cannot be read in full: missing, unreadable, gone midway (a
network mount), a subfolder or file that cannot be read, or empty while documents came from it
(an unmounted mount point looks like an empty folder). The index keeps serving what it has.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from os import scandir
from pathlib import Path

from kb.access import Rights, can_change, can_see, check_groups, rights_of, target_for
from kb.auth import LOCAL_ADMIN, Actor, NotAuthorized
from kb.catalog import SqliteCatalog, now
from kb.config import Settings
from kb.errors import KbError
from kb.intake import Intake
from kb.queue import JobQueue
from kb.records import SYNC_STATUSES, Document, Job, SyncedFile, SyncRecord, SyncReport, SyncStatus
from kb.storage import display_name

log = logging.getLogger(__name__)

META_PREFIX = "sync:"  # the catalog's meta key of each folder's last report: "sync:" + the folder


class SyncError(KbError):
    """The folder itself cannot be synced: missing, not a folder, or unreadable. Nothing was changed."""


@dataclass(frozen=True)
class FolderFile:
    """A file as the listing saw it: where it is, the document name it is synced as, size and mtime."""

    path: Path
    name: str
    size: int
    mtime_ns: int


@dataclass
class Listing:
    files: list[FolderFile] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (name, reason): parts that could not be read


def list_folder(root: Path) -> Listing:
    """The folder's files, recursively, in name order. Raises SyncError when the folder itself cannot be read;
    a subfolder or file that cannot be read is a problem of the listing (which then deletes nothing)."""
    if not root.exists():
        raise SyncError(f"{root} does not exist (a network folder that is not mounted?); nothing was changed")
    if not root.is_dir():
        raise SyncError(f"{root} is not a folder; nothing was changed")
    listing = Listing()
    _walk(root, (), root.resolve(), listing)
    return listing


def _walk(folder: Path, parts: tuple[str, ...], root_real: Path, listing: Listing) -> None:
    try:
        with scandir(folder) as entries:
            found = sorted(entries, key=lambda e: e.name)
    except OSError as exc:
        if not parts:
            raise SyncError(f"cannot read the folder {folder}: {exc.strerror or exc}; nothing was changed") from exc
        listing.problems.append(("/".join(parts) + "/", f"cannot read the folder: {exc.strerror or exc}"))
        return
    for entry in found:
        if entry.name.startswith("."):  # .git, .DS_Store, editors' swap files
            continue
        inside = (*parts, entry.name)
        try:
            if entry.is_symlink():
                target = Path(entry.path).resolve()
                if not target.is_relative_to(root_real) or not target.is_file():
                    continue  # out of the folder, or a folder (synced where it really is)
                stat = target.stat()
            elif entry.is_dir(follow_symlinks=False):
                _walk(Path(entry.path), inside, root_real, listing)
                continue
            elif entry.is_file(follow_symlinks=False):
                stat = entry.stat(follow_symlinks=False)
            else:  # sockets, pipes, devices
                continue
        except FileNotFoundError:  # removed while we listed: it is gone
            continue
        except (OSError, RuntimeError) as exc:  # RuntimeError: a symbolic link loop
            listing.problems.append(("/".join(inside), f"cannot read the file: {getattr(exc, 'strerror', None) or exc}"))
            continue
        name = display_name("/".join(inside), keep_folders=True)
        listing.files.append(FolderFile(Path(entry.path), name, stat.st_size, stat.st_mtime_ns))


def file_sha256(path: Path) -> str:
    with open(path, "rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


OnFile = Callable[[SyncedFile], None]


class FolderSync:
    """Syncs folders into the knowledge base through the intake and the job queue."""

    def __init__(self, settings: Settings, catalog: SqliteCatalog, intake: Intake, queue: JobQueue):
        self.settings = settings
        self.catalog = catalog
        self.intake = intake
        self.queue = queue

    def sync(
        self, folder: Path, *, actor: Actor = LOCAL_ADMIN, groups: Sequence[str] | None = None, delete: bool = False,
        on_file: OnFile | None = None,
    ) -> SyncReport:
        """Mirror `folder` into the knowledge base as `actor`; `groups` (None: keep each document's) sets the
        groups of its documents; `delete` removes the documents this sync added whose file is gone.

        Waits for the queued jobs (working them here when this process can take the queue); `on_file` hears
        each file's outcome as it is known. The folder's report is kept in the catalog for Admin. Never
        raises for the folder or a file: a folder that cannot be read is the report's `error`."""
        started, started_at = time.monotonic(), now()
        root = Path(os.path.abspath(folder.expanduser()))
        run = _Run(self, root, actor, on_file)
        try:
            cleaned = None if not groups else check_groups(groups, run.rights)
            run.sync(cleaned, delete)
            error = ""
        except (SyncError, NotAuthorized) as exc:
            error = str(exc)
        files = tuple(sorted(run.results.values(), key=lambda f: f.name))
        counts: dict[str, int] = {status: sum(1 for f in files if f.status == status) for status in SYNC_STATUSES}
        report = SyncReport(str(root), started_at, round(time.monotonic() - started, 2), counts, files, error,
                            tuple(run.notes))
        self._keep(report)
        return report

    def _keep(self, report: SyncReport) -> None:
        """The report without its files, for Admin (kb.service.KnowledgeBase.last_syncs)."""
        try:
            self.catalog.set_meta(META_PREFIX + report.root, json.dumps({**asdict(report), "files": []}))
        except OSError as exc:  # a full data directory: the sync itself is done
            log.warning("could not keep the report of the sync of %s: %s", report.root, exc)

    def last_reports(self) -> list[SyncReport]:
        """Each synced folder's last report (without files), the most recent first."""
        reports = []
        for value in self.catalog.meta_starting(META_PREFIX).values():
            data = json.loads(value)
            reports.append(SyncReport(**{**data, "files": (), "notes": tuple(data.get("notes", ()))}))
        return sorted(reports, key=lambda r: r.started_at, reverse=True)


class _Run:
    """One sync of one folder: the decisions, the queued jobs and what became of them."""

    def __init__(self, owner: FolderSync, root: Path, actor: Actor, on_file: OnFile | None):
        self.owner = owner
        self.catalog = owner.catalog
        self.root = root
        self.key = str(root)
        self.actor = actor
        self.rights: Rights = rights_of(actor, owner.settings)
        self.on_file = on_file
        self.results: dict[str, SyncedFile] = {}
        self.notes: list[str] = []
        self.ingests: dict[int, tuple[FolderFile, Document | None, bool]] = {}  # job -> (file, document before, created)
        self.deletes: dict[int, SyncRecord] = {}

    def report(self, name: str, status: SyncStatus, message: str) -> None:
        result = SyncedFile(name, status, message)
        self.results[name] = result
        if self.on_file:
            self.on_file(result)

    def sync(self, groups: tuple[str, ...] | None, delete: bool) -> None:
        listing = list_folder(self.root)
        records = self.catalog.synced(self.key)
        for name, reason in listing.problems:
            self.report(name, "failed", reason)
        for file in listing.files:
            if file.name not in self.results:  # two paths whose names clean up the same: the first wins
                self.consider(file, records.get(file.name), groups)
        listed = {f.name for f in listing.files} | {name for name, _ in listing.problems}
        gone = [record for name, record in sorted(records.items()) if name not in listed]
        blocked = self.why_not_delete(listing, gone) if delete else ""
        if blocked:
            self.notes.append(f"nothing deleted: {blocked}")
        for record in gone:
            self.consider_gone(record, delete, blocked)
        self.finish()

    # files in the folder -------------------------------------------------------------------
    def known(self, record: SyncRecord | None) -> Document | None:
        """The document the last sync made of this file, if it is still there and still this actor's to change."""
        doc = self.catalog.document(record.doc_id) if record else None
        return doc if doc is not None and doc.status != "deleting" and can_change(doc, self.rights) else None

    def consider(self, file: FolderFile, record: SyncRecord | None, groups: tuple[str, ...] | None) -> None:
        """Unchanged (reported now), or queued as an ingest job (reported when it is done)."""
        existing = self.known(record)
        created = record.created if record is not None and existing is not None else False
        if existing is None:
            try:
                existing = target_for(file.name, self.catalog.named(file.name), self.rights)
            except NotAuthorized as exc:
                self.report(file.name, "failed", str(exc))
                return
            created = existing is None
        if existing is not None and existing.status == "ok" and existing.size == file.size:
            seen = record is not None and record.doc_id == existing.doc_id and record.sha256 == existing.sha256
            if seen and record is not None and (record.size, record.mtime_ns) == (file.size, file.mtime_ns):
                sha = existing.sha256  # as the last sync saw it: not read again
            else:
                try:
                    sha = file_sha256(file.path)
                except FileNotFoundError:
                    self.report(file.name, "failed", "the file disappeared during the sync; its document is kept")
                    return
                except OSError as exc:
                    self.report(file.name, "failed", f"cannot read the file: {exc.strerror or exc}")
                    return
            if sha == existing.sha256:
                self.unchanged(file, record, existing, created, groups)
                return
        if (
            record is not None and record.outcome == "failed" and record.sha256
            and (record.size, record.mtime_ns) == (file.size, file.mtime_ns)
            and (existing is None or existing.doc_id == record.doc_id)
        ):
            self.report(file.name, "failed", f"{record.message} (unchanged since; tried again when the file changes)")
            return
        submitted = self.owner.intake.submit_file(file.path, file.name, file.size, actor=self.actor, groups=groups)
        self.ingests[submitted.job_id] = (file, existing, created)

    def unchanged(
        self, file: FolderFile, record: SyncRecord | None, doc: Document, created: bool, groups: tuple[str, ...] | None
    ) -> None:
        message = f"version {doc.version}"
        if groups is not None and groups != doc.groups:
            self.owner.intake.set_groups(doc.doc_id, groups, self.actor)  # no re-parse: the groups job is quick
            message += "; groups set to " + (", ".join(groups) or "everyone")
        new = SyncRecord(self.key, file.name, doc.doc_id, created, file.size, file.mtime_ns, doc.sha256, "ok")
        if new != record:
            self.catalog.remember_synced(new)
        self.report(file.name, "unchanged", message)

    # documents whose file is gone ----------------------------------------------------------
    def why_not_delete(self, listing: Listing, gone: list[SyncRecord]) -> str:
        if listing.problems:
            return "part of the folder could not be read (see the failed lines)"
        if not self.root.is_dir():
            return f"{self.root} went away during the sync"
        if gone and not listing.files:
            return (f"{self.root} is empty; if it is a network folder that is not mounted, its documents must stay "
                    "(if it really is empty, delete them with `kb delete`)")
        return ""

    def consider_gone(self, record: SyncRecord, delete: bool, blocked: str) -> None:
        doc = self.catalog.document(record.doc_id)
        if doc is None or doc.status == "deleting":
            self.catalog.forget_synced(self.key, record.name)
            return
        if not can_see(doc, self.rights):  # a report never names a document the actor may not see
            return
        if not delete:
            self.report(record.name, "kept", "the file is gone; the document stays (sync with --delete to remove it)")
        elif blocked:
            self.report(record.name, "kept", "the file is gone, but nothing is deleted this time")
        elif not record.created:
            self.catalog.forget_synced(self.key, record.name)
            self.report(record.name, "kept", "the file is gone; the document was not added by this sync, so it stays")
        else:
            try:
                self.deletes[self.owner.intake.submit_delete(doc.doc_id, self.actor)] = record
            except NotAuthorized as exc:
                self.report(record.name, "failed", str(exc))

    # the queued jobs -----------------------------------------------------------------------
    def finish(self) -> None:
        pending = sorted([*self.ingests, *self.deletes])
        if not pending:
            return
        queue = self.owner.queue
        if queue.take():
            queue.work(on_done=self.done)
        remaining = [job_id for job_id in pending if job_id in self.ingests or job_id in self.deletes]
        queue.wait(remaining, on_done=self.done)

    def done(self, job: Job) -> None:
        if job.id in self.deletes:
            record = self.deletes.pop(job.id)
            if job.outcome == "ok":
                self.catalog.forget_synced(self.key, record.name)
                self.report(record.name, "removed", job.message)
            else:
                self.report(record.name, "failed", job.message)
            return
        if job.id not in self.ingests:
            return
        file, before, created = self.ingests.pop(job.id)
        message = job.message
        if job.outcome == "failed" and not file.path.exists():
            message = f"the file disappeared during the sync ({message}); nothing else changed"
        try:
            doc = target_for(file.name, self.catalog.named(file.name), self.rights)
        except NotAuthorized:
            doc = None
        if doc is not None:
            self.catalog.remember_synced(SyncRecord(
                self.key, file.name, doc.doc_id, created, file.size, file.mtime_ns, job.blob, job.outcome, message,
            ))
        if job.outcome == "ok":
            self.report(file.name, "added" if before is None or before.version == 0 else "new version", message)
        else:
            self.report(file.name, "unchanged" if job.outcome == "unchanged" else "failed", message)


class SyncSchedule:
    """The folders of KB_SYNC_PATHS, synced every KB_SYNC_INTERVAL_S by the process that works the queue
    (the app's worker thread, or `kb worker`): the first time it is asked, then once per interval."""

    def __init__(self, syncer: FolderSync, settings: Settings, clock: Callable[[], float] = time.monotonic):
        self.syncer = syncer
        self.settings = settings
        self.clock = clock
        self._next_at: float | None = None

    def run_due(self, at: float | None = None) -> list[SyncReport]:
        """Sync every configured folder if it is time (`at`: the clock's reading, for tests); their reports."""
        folders = self.settings.sync_folders
        at = self.clock() if at is None else at
        if not folders or (self._next_at is not None and at < self._next_at):
            return []
        if not self.syncer.queue.take():  # another process works the queue: it syncs
            return []
        self._next_at = at + self.settings.sync_interval_s
        reports = []
        for folder, groups in folders:
            report = self.syncer.sync(folder, groups=groups or None, delete=self.settings.sync_delete)
            if report.error:
                log.warning("sync of %s: %s", folder, report.error)
            else:
                log.info("sync of %s: %s", folder, report.summary())
            reports.append(report)
        return reports
