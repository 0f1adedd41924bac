"""The job queue: every change to the index is a job, queued by any process, worked by one.

A person's uploads are read from here (`uploads`), so they survive a reload, a second tab and a restart;
cancelling, clearing and the undoing of a cancelled version are here too, next to the queue they act on.
"""

from __future__ import annotations

import json
from typing import Literal, Sequence

from kb.catalog.database import MAX_ATTEMPTS, Database, _job, now
from kb.records import Document, Job

CancelState = Literal["cancelled", "requested", "finished"]


class Jobs(Database):
    def enqueue(self, job: Job) -> int:
        with self._write() as db:
            cursor = db.execute(
                "INSERT INTO jobs (kind, name, blob, size, uploader, groups, status, outcome, message,"
                " created_at, finished_at, doc_id, actor_groups, actor_admin, batch)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (job.kind, job.name, job.blob, job.size, job.uploader,
                 json.dumps(None if job.groups is None else list(job.groups)),
                 job.status, job.outcome, job.message, now(), now() if job.status == "done" else "",
                 job.doc_id, json.dumps(list(job.actor_groups)), int(job.actor_admin), job.batch),
            )
            job_id = int(cursor.lastrowid or 0)
            if not job.batch:  # the first of its batch (or alone): the batch is named after it
                db.execute("UPDATE jobs SET batch = id WHERE id = ?", (job_id,))
            return job_id

    def claim_next(self) -> Job | None:
        with self._write() as db:
            row = db.execute("SELECT * FROM jobs WHERE status = 'queued' ORDER BY id LIMIT 1").fetchone()
            if row is None:
                return None
            db.execute(
                "UPDATE jobs SET status = 'running', attempts = attempts + 1,"
                " started_at = CASE WHEN started_at = '' THEN ? ELSE started_at END WHERE id = ?",
                (now(), row["id"]),
            )
            return _job(db.execute("SELECT * FROM jobs WHERE id = ?", (row["id"],)).fetchone())

    def finish(self, job_id: int, outcome: str, message: str) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE jobs SET status = 'done', outcome = ?, message = ?, finished_at = ? WHERE id = ?",
                (outcome, message, now(), job_id),
            )

    def jobs(self, ids: Sequence[int]) -> list[Job]:
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        return [_job(r) for r in self._query(f"SELECT * FROM jobs WHERE id IN ({marks}) ORDER BY id", list(ids))]

    def recent_jobs(self, limit: int = 50) -> list[Job]:
        return [_job(r) for r in self._query("SELECT * FROM jobs ORDER BY id DESC LIMIT ?", (limit,))]

    def requeue_interrupted(self) -> list[Job]:
        with self._write() as db:
            rows = db.execute("SELECT * FROM jobs WHERE status = 'running'").fetchall()
            for row in rows:
                if row["cancel_requested"]:  # it was to stop anyway; a crashed version is undone by recovery
                    db.execute(
                        "UPDATE jobs SET status = 'done', outcome = 'cancelled', finished_at = ?, message = ?"
                        " WHERE id = ?", (now(), "cancelled; nothing of it was indexed", row["id"]),
                    )
                elif row["attempts"] >= MAX_ATTEMPTS:
                    db.execute(
                        "UPDATE jobs SET status = 'done', outcome = 'failed', finished_at = ?, message = ?"
                        " WHERE id = ?",
                        (now(), f"stopped {row['attempts']} times while processing this file", row["id"]),
                    )
                else:
                    db.execute("UPDATE jobs SET status = 'queued' WHERE id = ?", (row["id"],))
        return [_job(r) for r in rows]

    def queued_count(self) -> int:
        return int(self._query("SELECT COUNT(*) AS n FROM jobs WHERE status != 'done'")[0]["n"])

    def set_progress(self, job_id: int, done: int, total: int) -> None:
        """Record how far a running job is (steps done of total), for any process to show."""
        with self._write() as db:
            db.execute("UPDATE jobs SET done = ?, total = ? WHERE id = ?", (done, total, job_id))

    def unfinished(self, kind: str) -> Job | None:
        """The oldest job of this kind that is queued or running, however many jobs came after it."""
        rows = self._query("SELECT * FROM jobs WHERE kind = ? AND status != 'done' ORDER BY id LIMIT 1", (kind,))
        return _job(rows[0]) if rows else None

    # a person's uploads -----------------------------------------------------------------------
    def uploads(self, uploader: str | None, since: str, limit: int = 500) -> list[Job]:
        """The file jobs `uploader` submitted (None: everyone's) that are unfinished, or finished at or
        after `since` and not cleared; oldest first, at most `limit` (the newest)."""
        who = "" if uploader is None else " AND uploader = ?"
        rows = self._query(
            "SELECT * FROM (SELECT * FROM jobs WHERE kind = 'ingest'" + who +
            " AND (status != 'done' OR (cleared = 0 AND finished_at >= ?)) ORDER BY id DESC LIMIT ?) ORDER BY id",
            ([] if uploader is None else [uploader]) + [since, limit],
        )
        return [_job(r) for r in rows]

    def batches(self, batch_ids: Sequence[int]) -> list[Job]:
        """Every job of these batches, cleared ones too (how fast a batch went is measured on all of it)."""
        if not batch_ids:
            return []
        marks = ",".join("?" * len(batch_ids))
        return [_job(r) for r in self._query(f"SELECT * FROM jobs WHERE batch IN ({marks}) ORDER BY id", list(batch_ids))]

    def clear(self, job_ids: Sequence[int]) -> int:
        """Take these jobs off their submitter's list, if finished; returns how many."""
        if not job_ids:
            return 0
        marks = ",".join("?" * len(job_ids))
        with self._write() as db:
            cursor = db.execute(
                f"UPDATE jobs SET cleared = 1 WHERE status = 'done' AND id IN ({marks})", list(job_ids)
            )
            return cursor.rowcount

    # cancelling -------------------------------------------------------------------------------
    def cancel(self, job_id: int, message: str) -> CancelState:
        """A queued job is finished as cancelled at once (no worker will take it); a running one is
        flagged for its runner, which stops at its next check ("requested"); a finished one stays."""
        with self._write() as db:
            row = db.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None or row["status"] == "done":
                return "finished"
            if row["status"] == "queued":
                db.execute(
                    "UPDATE jobs SET status = 'done', outcome = 'cancelled', message = ?, finished_at = ?,"
                    " cancel_requested = 1 WHERE id = ?", (message, now(), job_id),
                )
                return "cancelled"
            db.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ?", (job_id,))
            return "requested"

    def cancel_requested(self, job_id: int) -> bool:
        rows = self._query("SELECT cancel_requested FROM jobs WHERE id = ?", (job_id,))
        return bool(rows and rows[0]["cancel_requested"])

    def discard_version(self, doc_id: str, version: int, before: Document | None) -> None:
        """Undo `begin_version` for a cancelled job, so the catalog is as it was: the version's row goes,
        and so does a document it created (`before` None), or the document gets back its error and time.
        Only for a version that never served (still 'indexing' or 'failed')."""
        with self._write() as db:
            db.execute(
                "DELETE FROM versions WHERE doc_id = ? AND version = ? AND status IN ('indexing', 'failed')",
                (doc_id, version),
            )
            if before is None:
                db.execute(
                    "DELETE FROM documents WHERE doc_id = ? AND version = 0"
                    " AND NOT EXISTS (SELECT 1 FROM versions WHERE versions.doc_id = documents.doc_id)",
                    (doc_id,),
                )
            else:
                db.execute(
                    "UPDATE documents SET error = ?, updated_at = ? WHERE doc_id = ?",
                    (before.error, before.updated_at, doc_id),
                )

    def blob_in_use(self, sha256: str) -> bool:
        """Whether a document, a version or an unfinished job still needs this stored original."""
        rows = self._query(
            "SELECT 1 FROM documents WHERE sha256 = ? UNION SELECT 1 FROM versions WHERE sha256 = ?"
            " UNION SELECT 1 FROM jobs WHERE blob = ? AND status != 'done' LIMIT 1",
            (sha256, sha256, sha256),
        )
        return bool(rows)
