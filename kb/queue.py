"""The job queue's worker side: who works it, crash recovery, working and waiting, progress.

Any process queues jobs in the catalog (kb.intake); exactly one works them: the one holding the lease
(an exclusive lock on `worker.lock` in the data directory), which is also the one holding the index,
since the embedded engine admits a single process. A job's progress is written to the catalog, so any
process (the app while `kb worker` re-indexes) can show it.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from datetime import datetime, timedelta, timezone
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

from kb.catalog import MAX_ATTEMPTS, SqliteCatalog
from kb.errors import IndexBusy
from kb.jobs import JobRunner, Progress
from kb.records import Job
from kb.serving import ServingIndex
from kb.storage import BlobStore

log = logging.getLogger(__name__)

RETENTION_EVERY_S = 3600.0  # the audit log's old answers are deleted at most this often
PROGRESS_EVERY_S = 0.5  # a running job's progress reaches the catalog at most this often (and at the end)


def busy_message(data_dir: Path) -> str:
    """Why this process cannot open the embedded index: which process has it and what to do."""
    try:
        pid = (data_dir / "worker.lock").read_text().strip()
    except OSError:
        pid = "?"
    return (
        f"the index is open in another kb process (pid {pid}, for example the app). "
        "Use the app, stop that process, or configure a Qdrant server (KB_QDRANT_URL)."
    )


class JobQueue:
    """Leases the queue for this process and works it with a JobRunner."""

    def __init__(self, data_dir: Path, catalog: SqliteCatalog, blobs: BlobStore, serving: ServingIndex,
                 runner: JobRunner):
        self.data_dir = data_dir
        self.catalog = catalog
        self.blobs = blobs
        self.serving = serving
        self.runner = runner
        self._retention_at = -RETENTION_EVERY_S  # the first work() applies it
        self._lease: IO[str] | None = None
        # what a long-lived worker does besides jobs, when due (kb.sync.SyncSchedule.run_due): run_scheduled
        self.scheduled: list[Callable[[], object]] = []

    @property
    def held(self) -> bool:
        return self._lease is not None

    def take(self) -> bool:
        """Become the process that works the queue, if no other live process is; recovers from crashes."""
        if self._lease is not None:
            return True
        lease = open(self.data_dir / "worker.lock", "a+")
        try:
            fcntl.flock(lease, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lease.close()
            return False
        try:
            self.serving.open()
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
        self.recover()
        return True

    def release(self) -> None:
        if self._lease is not None:
            self._lease.close()
            self._lease = None

    def recover(self) -> None:
        """Make the catalog and the index agree again after a crash."""
        catalog, index = self.catalog, self.serving.index
        for job in catalog.requeue_interrupted():
            if job.attempts >= MAX_ATTEMPTS:  # given up on: an upload that keeps killing its worker failed
                log.warning("job %s (%s %s) stopped its worker %s times; failed", job.id, job.kind, job.name, job.attempts)
                if job.kind == "ingest":
                    catalog.record_attempt(job, f"stopped {job.attempts} times while processing this file", job.doc_id)
                continue
            then = "cancelled, as asked" if job.cancel_requested else "queued again"
            log.warning("job %s (%s %s) was interrupted; %s", job.id, job.kind, job.name, then)
        for doc_id, version in catalog.versions_in_progress():
            catalog.abort_version(doc_id, version, "interrupted before it was indexed")
        known = {d.doc_id: d for d in catalog.documents()}
        for doc_id, versions in index.document_versions().items():
            doc = known.get(doc_id)
            if doc is None or doc.status == "deleting" or doc.version not in versions:
                index.delete_document(doc_id)
            elif versions != {doc.version}:  # a version cut short by a crash, or an old one left behind
                index.delete_other_versions(doc_id, doc.version)
        for doc in known.values():
            if doc.status == "deleting":
                for blob in catalog.remove_document(doc.doc_id):
                    self.blobs.delete(blob)
        self.blobs.remove_incoming()

    def work(self, on_done: Callable[[Job], None] | None = None, progress: Progress | None = None) -> int:
        """Work queued jobs until none is left (only in the process that holds the lease); apply the audit
        log's retention (KB_AUDIT_DAYS) at most once an hour."""
        if not self.take():
            return 0
        self._apply_retention()
        worked = 0
        while (job := self.catalog.claim_next()) is not None:
            self.runner.run(job, self._recorded(job.id, progress))
            worked += 1
            if on_done:
                on_done(self.catalog.jobs([job.id])[0])
        if worked:
            self.serving.compact_if_due()
        return worked

    def run_scheduled(self) -> None:
        """The scheduled tasks (the folder syncs of KB_SYNC_PATHS), each deciding whether it is due; only in
        the process that holds the lease, and only from long-lived workers (the app's thread, `kb worker`),
        never from a one-off command such as `kb ingest`."""
        if not self.scheduled or not self.take():
            return
        for task in self.scheduled:
            try:
                task()
            except Exception:  # a scheduled task never takes the worker down
                log.exception("scheduled task failed")

    def _apply_retention(self) -> None:
        days = self.runner.settings.audit_days
        if not days or time.monotonic() - self._retention_at < RETENTION_EVERY_S:
            return
        self._retention_at = time.monotonic()
        cutoff = (datetime.now(timezone.utc) - timedelta(days=days)).isoformat(timespec="seconds")
        removed = self.catalog.forget_answers_before(cutoff)
        if removed:
            log.info("audit log: %d answers older than %d days removed (KB_AUDIT_DAYS)", removed, days)

    def _recorded(self, job_id: int, progress: Progress | None) -> Progress:
        """A progress callback that writes to the catalog (throttled) and tells `progress` too."""
        last = 0.0

        def report(done: int, total: int) -> None:
            nonlocal last
            now = time.monotonic()
            if done >= total or now - last >= PROGRESS_EVERY_S:
                last = now
                self.catalog.set_progress(job_id, done, total)
            if progress:
                progress(done, total)

        return report

    def wait(self, job_ids: Sequence[int], on_done: Callable[[Job], None], poll_s: float = 0.5) -> None:
        """Wait for another process to work these jobs, reporting each as it finishes."""
        pending = set(job_ids)

        def finished(job: Job) -> None:
            if job.id in pending:
                pending.discard(job.id)
                on_done(job)

        while pending:
            for job in self.catalog.jobs(sorted(pending)):
                if job.status == "done":
                    finished(job)
            if pending:
                if self.take():  # the other process went away: finish the work here
                    self.work(on_done=finished)
                else:
                    time.sleep(poll_s)
