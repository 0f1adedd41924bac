"""The job queue: every change to the index is a job, queued by any process, worked by one."""

from __future__ import annotations

import json
from typing import Sequence

from kb.catalog.database import MAX_ATTEMPTS, Database, _job, now
from kb.records import Job


class Jobs(Database):
    def enqueue(self, job: Job) -> int:
        with self._write() as db:
            cursor = db.execute(
                "INSERT INTO jobs (kind, name, blob, size, uploader, groups, status, outcome, message,"
                " created_at, finished_at, doc_id, actor_groups, actor_admin)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (job.kind, job.name, job.blob, job.size, job.uploader,
                 json.dumps(None if job.groups is None else list(job.groups)),
                 job.status, job.outcome, job.message, now(), now() if job.status == "done" else "",
                 job.doc_id, json.dumps(list(job.actor_groups)), int(job.actor_admin)),
            )
            return int(cursor.lastrowid or 0)

    def claim_next(self) -> Job | None:
        with self._write() as db:
            row = db.execute("SELECT * FROM jobs WHERE status = 'queued' ORDER BY id LIMIT 1").fetchone()
            if row is None:
                return None
            db.execute("UPDATE jobs SET status = 'running', attempts = attempts + 1 WHERE id = ?", (row["id"],))
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
                if row["attempts"] >= MAX_ATTEMPTS:
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
