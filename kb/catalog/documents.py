"""The documents and their versions: what is served, what is being written, what failed.

A document is what has a serving version (`served_documents`): every list and count of kb uses that
one definition. A failed upload is a failed attempt (`failed_attempts`), never a document; a document
whose newest upload failed keeps serving its last good version and carries the reason in `error`.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Sequence

from kb.catalog.database import Database, _attempt, _document, now
from kb.records import Document, FailedAttempt, Job, Version

SERVED = "version > 0 AND status = 'ok'"  # what kb calls a document: it has a version the index serves


class Documents(Database):
    # documents -------------------------------------------------------------------------------
    def documents(self) -> list[Document]:
        """Every row, drafts of an ingest in progress and documents being deleted included (recovery,
        re-index); lists and counts use `served_documents`."""
        return [_document(r) for r in self._query("SELECT * FROM documents ORDER BY name")]

    def served_documents(self) -> list[Document]:
        """The documents, as every page, command and count of kb means them: those with a serving version."""
        return [_document(r) for r in self._query(f"SELECT * FROM documents WHERE {SERVED} ORDER BY name, created_at")]

    def versions(self, doc_id: str) -> list[Version]:
        """Every version of a document, newest first (`kept` is the blob store's to say: False here)."""
        rows = self._query(
            "SELECT doc_id, version, status, created_at, uploader, sha256, size, kind, pages, chunks, error"
            " FROM versions WHERE doc_id = ? ORDER BY version DESC",
            (doc_id,),
        )
        return [Version(**dict(r)) for r in rows]

    def document(self, doc_id: str) -> Document | None:
        rows = self._query("SELECT * FROM documents WHERE doc_id = ?", (doc_id,))
        return _document(rows[0]) if rows else None

    def named(self, name: str) -> list[Document]:
        """Every document called `name`, oldest first (who may see which is kb.access's business)."""
        rows = self._query("SELECT * FROM documents WHERE name = ? ORDER BY created_at, doc_id", (name,))
        return [_document(r) for r in rows]

    def serving(self, doc_ids: Sequence[str]) -> dict[str, tuple[int, tuple[str, ...]]]:
        """(served version, groups) of each given document that exists and is not being deleted."""
        if not doc_ids:
            return {}
        marks = ",".join("?" * len(doc_ids))
        rows = self._query(
            f"SELECT doc_id, version, groups FROM documents WHERE doc_id IN ({marks}) "
            "AND status != 'deleting' AND version > 0",
            list(doc_ids),
        )
        return {r["doc_id"]: (r["version"], tuple(json.loads(r["groups"]))) for r in rows}

    def set_groups(self, doc_id: str, groups: Sequence[str]) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE documents SET groups = ?, updated_at = ? WHERE doc_id = ?",
                (json.dumps(list(groups)), now(), doc_id),
            )

    def version_made_by(self, doc_id: str, job_id: int) -> tuple[int, int | None, int] | None:
        """(version, pages, chunks) of the document's serving version if job `job_id` made it."""
        rows = self._query(
            "SELECT version, pages, chunks FROM versions WHERE doc_id = ? AND job_id = ? AND status = 'ok'",
            (doc_id, job_id),
        )
        return (rows[0]["version"], rows[0]["pages"], rows[0]["chunks"]) if rows and job_id else None

    def version_created(self, doc_id: str, version: int) -> str:
        """When a version of the document was added ("" if unknown): the date a passage's text is from."""
        rows = self._query("SELECT created_at FROM versions WHERE doc_id = ? AND version = ?", (doc_id, version))
        return str(rows[0]["created_at"]) if rows else ""

    def version_blob(self, doc_id: str, version: int) -> str:
        """The sha256 of a version's stored original ("" if unknown): what that version's passages were cut from."""
        rows = self._query("SELECT sha256 FROM versions WHERE doc_id = ? AND version = ?", (doc_id, version))
        return str(rows[0]["sha256"]) if rows else ""

    def next_version(self, doc_id: str) -> int:
        rows = self._query("SELECT COALESCE(MAX(version), 0) + 1 AS v FROM versions WHERE doc_id = ?", (doc_id,))
        return int(rows[0]["v"])

    def _ensure_document(self, db: sqlite3.Connection, doc: Document, status: str, error: str) -> None:
        """Create the document (with its owner and groups) or note the attempt on the existing one,
        whose owner and groups stay as they are."""
        stamp = now()
        db.execute(
            "INSERT INTO documents (doc_id, name, version, status, sha256, size, kind, error, uploader,"
            " groups, owner, created_at, updated_at) VALUES (?, ?, 0, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT(doc_id) DO UPDATE SET error = excluded.error, updated_at = excluded.updated_at,"
            " status = CASE WHEN documents.version > 0 THEN documents.status ELSE excluded.status END",
            (doc.doc_id, doc.name, status, doc.sha256, doc.size, doc.kind, error, doc.uploader,
             json.dumps(list(doc.groups)), doc.owner, stamp, stamp),
        )

    def begin_version(self, doc: Document, version: int, job_id: int = 0) -> None:
        with self._write() as db:
            self._ensure_document(db, doc, "failed", "")
            db.execute(
                "INSERT OR REPLACE INTO versions (doc_id, version, sha256, size, kind, status, created_at,"
                " uploader, job_id) VALUES (?, ?, ?, ?, ?, 'indexing', ?, ?, ?)",
                (doc.doc_id, version, doc.sha256, doc.size, doc.kind, now(), doc.uploader, job_id),
            )

    def commit_version(self, doc_id: str, version: int, pages: int | None, chunks: int) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE versions SET status = 'superseded' WHERE doc_id = ? AND status = 'ok'", (doc_id,)
            )
            db.execute(
                "UPDATE versions SET status = 'ok', pages = ?, chunks = ? WHERE doc_id = ? AND version = ?",
                (pages, chunks, doc_id, version),
            )
            db.execute(
                "UPDATE documents SET version = ?, status = 'ok', error = '', pages = ?, chunks = ?,"
                " sha256 = v.sha256, size = v.size, kind = v.kind, uploader = v.uploader, updated_at = ?"
                " FROM (SELECT sha256, size, kind, uploader FROM versions WHERE doc_id = ? AND version = ?) AS v"
                " WHERE documents.doc_id = ?",
                (version, pages, chunks, now(), doc_id, version, doc_id),
            )

    def abort_version(self, doc_id: str, version: int, reason: str, job: Job | None = None) -> None:
        """A version that could not be written. A document with a history keeps it (and the reason, as a
        warning); the draft of a new document goes, so a failure never becomes a document. With the
        job, the failure is recorded as a failed attempt (recovery passes none: the job runs again)."""
        with self._write() as db:
            db.execute(
                "UPDATE versions SET status = 'failed', error = ? WHERE doc_id = ? AND version = ?",
                (reason, doc_id, version),
            )
            if _has_history(db, doc_id):
                db.execute(
                    "UPDATE documents SET error = ?, updated_at = ? WHERE doc_id = ?", (reason, now(), doc_id)
                )
            else:
                db.execute("DELETE FROM versions WHERE doc_id = ?", (doc_id,))
                db.execute("DELETE FROM documents WHERE doc_id = ?", (doc_id,))
                doc_id = ""
            if job is not None:
                _add_attempt(db, job, reason, doc_id)

    def record_failure(self, doc: Document, reason: str, job: Job | None = None) -> None:
        """An upload that failed before a version was begun: a warning on the document it was to be a
        version of, if that exists; with the job, a failed attempt."""
        with self._write() as db:
            exists = db.execute("SELECT 1 FROM documents WHERE doc_id = ?", (doc.doc_id,)).fetchone() is not None
            if exists:
                db.execute(
                    "UPDATE documents SET error = ?, updated_at = ? WHERE doc_id = ?", (reason, now(), doc.doc_id)
                )
            if job is not None:
                _add_attempt(db, job, reason, doc.doc_id if exists else "")

    def record_attempt(self, job: Job, reason: str, doc_id: str = "") -> None:
        """A failed ingest job as a failed attempt, unless one is recorded for it already."""
        with self._write() as db:
            _add_attempt(db, job, reason, doc_id)

    def unserve(self, doc_id: str, reason: str) -> None:
        """A document a re-index could not parse again: no longer served, so no longer a document; its row
        and versions stay (a retry makes its next version) and a failed attempt names it, for its owner."""
        with self._write() as db:
            db.execute("UPDATE versions SET status = 'superseded' WHERE doc_id = ? AND status = 'ok'", (doc_id,))
            db.execute(
                "UPDATE documents SET version = 0, status = 'failed', chunks = 0, error = ?, updated_at = ?"
                " WHERE doc_id = ?",
                (reason, now(), doc_id),
            )
            db.execute(
                "INSERT INTO failed_attempts (name, reason, created_at, uploader, doc_id, blob, size)"
                " SELECT name, ?, ?, owner, doc_id, sha256, size FROM documents WHERE doc_id = ?",
                (reason, now(), doc_id),
            )

    # failed attempts -------------------------------------------------------------------------
    def failed_attempts(self) -> list[FailedAttempt]:
        """Every failed upload, newest first (`kept` is the blob store's to say: False here)."""
        return [_attempt(r, kept=False) for r in self._query("SELECT * FROM failed_attempts ORDER BY id DESC")]

    def failed_attempt(self, attempt_id: int) -> FailedAttempt | None:
        rows = self._query("SELECT * FROM failed_attempts WHERE id = ?", (attempt_id,))
        return _attempt(rows[0], kept=False) if rows else None

    def take_attempt(self, attempt_id: int) -> FailedAttempt | None:
        """Remove the attempt to retry it, returning it (None if another click took it first). Its original
        stays: the retry's job holds it."""
        with self._write() as db:
            row = db.execute("SELECT * FROM failed_attempts WHERE id = ?", (attempt_id,)).fetchone()
            if row is None:
                return None
            db.execute("DELETE FROM failed_attempts WHERE id = ?", (attempt_id,))
            return _attempt(row, kept=False)

    def remove_attempt(self, attempt_id: int, drop_husk: bool = False) -> list[str]:
        """Dismiss an attempt; returns the originals nothing refers to any more, to delete. When it was the
        last attempt naming a document, that document's warning goes; and with `drop_husk`, a document
        that serves nothing (a re-index could not parse it) goes too, unless a job is about to give it a
        version."""
        with self._write() as db:
            row = db.execute("SELECT blob, doc_id FROM failed_attempts WHERE id = ?", (attempt_id,)).fetchone()
            if row is None:
                return []
            db.execute("DELETE FROM failed_attempts WHERE id = ?", (attempt_id,))
            blobs, doc_id = {row["blob"]}, row["doc_id"]
            if doc_id and not db.execute("SELECT 1 FROM failed_attempts WHERE doc_id = ?", (doc_id,)).fetchone():
                db.execute(f"UPDATE documents SET error = '' WHERE doc_id = ? AND {SERVED}", (doc_id,))
                husk = db.execute(
                    "SELECT 1 FROM documents WHERE doc_id = ? AND version = 0 AND status = 'failed'"
                    " AND NOT EXISTS (SELECT 1 FROM jobs WHERE doc_id = ? AND status != 'done')",
                    (doc_id, doc_id),
                ).fetchone()
                if husk and drop_husk:
                    blobs |= {r["sha256"] for r in db.execute("SELECT sha256 FROM versions WHERE doc_id = ?", (doc_id,))}
                    db.execute("DELETE FROM versions WHERE doc_id = ?", (doc_id,))
                    db.execute("DELETE FROM documents WHERE doc_id = ?", (doc_id,))
            return _unused(db, blobs)

    def versions_in_progress(self) -> list[tuple[str, int]]:
        rows = self._query("SELECT doc_id, version FROM versions WHERE status = 'indexing'")
        return [(r["doc_id"], r["version"]) for r in rows]

    def mark_deleting(self, doc_id: str) -> None:
        with self._write() as db:
            db.execute("UPDATE documents SET status = 'deleting', updated_at = ? WHERE doc_id = ?", (now(), doc_id))

    def remove_document(self, doc_id: str) -> list[str]:
        """Forget a document, its versions and the failed attempts at new versions of it; returns the
        originals nothing refers to any more, to delete."""
        with self._write() as db:
            blobs = {r["sha256"] for r in db.execute("SELECT sha256 FROM versions WHERE doc_id = ?", (doc_id,))}
            blobs |= {r["blob"] for r in db.execute("SELECT blob FROM failed_attempts WHERE doc_id = ?", (doc_id,))}
            db.execute("DELETE FROM versions WHERE doc_id = ?", (doc_id,))
            db.execute("DELETE FROM failed_attempts WHERE doc_id = ?", (doc_id,))
            db.execute("DELETE FROM documents WHERE doc_id = ?", (doc_id,))
            return _unused(db, blobs)

    def update_counts(self, doc_id: str, pages: int | None, chunks: int) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE documents SET pages = ?, chunks = ? WHERE doc_id = ?", (pages, chunks, doc_id)
            )
            db.execute(
                "UPDATE versions SET pages = ?, chunks = ? WHERE doc_id = ? AND status = 'ok'",
                (pages, chunks, doc_id),
            )



def _has_history(db: sqlite3.Connection, doc_id: str) -> bool:
    """Whether the document ever served a version (else its row is only the draft of a first attempt)."""
    return db.execute(
        "SELECT 1 FROM documents WHERE doc_id = ? AND version > 0"
        " UNION SELECT 1 FROM versions WHERE doc_id = ? AND status IN ('ok', 'superseded')",
        (doc_id, doc_id),
    ).fetchone() is not None


def _add_attempt(db: sqlite3.Connection, job: Job, reason: str, doc_id: str) -> None:
    """Record a failed ingest job as a failed attempt, once per job."""
    if job.id and db.execute("SELECT 1 FROM failed_attempts WHERE job_id = ?", (job.id,)).fetchone():
        return
    if doc_id and db.execute("SELECT 1 FROM documents WHERE doc_id = ?", (doc_id,)).fetchone() is None:
        doc_id = ""  # gone meanwhile: a retry makes a new document
    db.execute(
        "INSERT INTO failed_attempts (name, reason, created_at, uploader, doc_id, blob, size, groups,"
        " actor_groups, actor_admin, job_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (job.name, reason, now(), job.uploader, doc_id, job.blob, job.size,
         json.dumps(None if job.groups is None else list(job.groups)), json.dumps(list(job.actor_groups)),
         int(job.actor_admin), job.id),
    )


def _unused(db: sqlite3.Connection, blobs: set[str]) -> list[str]:
    """The originals among `blobs` that no version, failed attempt or unfinished job refers to."""
    used = {r["sha256"] for r in db.execute("SELECT DISTINCT sha256 FROM versions")}
    used |= {r["blob"] for r in db.execute("SELECT blob FROM failed_attempts")}
    used |= {r["blob"] for r in db.execute("SELECT blob FROM jobs WHERE status != 'done'")}
    return sorted(b for b in blobs - used if b)
