"""The catalog: documents, their versions, ingest outcomes, the job queue and feedback.

`SqliteCatalog` keeps them in one SQLite file in WAL mode, which several processes may open at once
(the app and `kb ingest`). Every write is one transaction, so a crash leaves the catalog either
before or after a change, never in between. A document is known by its id; its name is what people
call it and need not be unique (see kb.access: names are scoped by what each person can see).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import shutil
import sqlite3
import threading
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, Sequence

from kb.records import Document, Feedback, Job
from kb.storage import DataDirError, data_dir_error, no_space, not_writable

MAX_ATTEMPTS = 3  # a job that crashed its worker this often is failed instead of retried
_NEARLY_FULL_BYTES = 1 << 20  # less free than this on the disk, and an SQLite I/O error means "disk full"


def doc_id_for(name: str) -> str:
    """A short stable id derived from a name, for text records loaded in bulk (names unique there)."""
    return hashlib.sha256(name.encode("utf-8")).hexdigest()[:16]


def new_doc_id() -> str:
    """The id of a new document: random, so it says nothing about the name or about other documents."""
    return secrets.token_hex(8)


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


SCHEMA_VERSION = 1  # PRAGMA user_version; 0 is the first release (names unique, no owners)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    doc_id TEXT PRIMARY KEY, name TEXT NOT NULL, version INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL, sha256 TEXT NOT NULL DEFAULT '', size INTEGER NOT NULL DEFAULT 0,
    kind TEXT NOT NULL DEFAULT '', pages INTEGER, chunks INTEGER NOT NULL DEFAULT 0,
    error TEXT NOT NULL DEFAULT '', uploader TEXT NOT NULL DEFAULT '', groups TEXT NOT NULL DEFAULT '[]',
    owner TEXT NOT NULL DEFAULT '', created_at TEXT NOT NULL, updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS documents_name ON documents (name);
CREATE TABLE IF NOT EXISTS versions (
    doc_id TEXT NOT NULL, version INTEGER NOT NULL, sha256 TEXT NOT NULL, size INTEGER NOT NULL,
    kind TEXT NOT NULL DEFAULT '', status TEXT NOT NULL, error TEXT NOT NULL DEFAULT '',
    pages INTEGER, chunks INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL,
    uploader TEXT NOT NULL DEFAULT '', job_id INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (doc_id, version)
);
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, name TEXT NOT NULL DEFAULT '',
    blob TEXT NOT NULL DEFAULT '', size INTEGER NOT NULL DEFAULT 0, uploader TEXT NOT NULL DEFAULT '',
    groups TEXT NOT NULL DEFAULT 'null', status TEXT NOT NULL, outcome TEXT NOT NULL DEFAULT '',
    message TEXT NOT NULL DEFAULT '', attempts INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL, finished_at TEXT NOT NULL DEFAULT '',
    doc_id TEXT NOT NULL DEFAULT '', actor_groups TEXT NOT NULL DEFAULT '[]', actor_admin INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT, user TEXT NOT NULL, question TEXT NOT NULL,
    query TEXT NOT NULL, answer TEXT NOT NULL, chunk_ids TEXT NOT NULL DEFAULT '[]',
    rating INTEGER NOT NULL, comment TEXT NOT NULL DEFAULT '', mode TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL
);
"""

# From the first release: names stop being unique (the documents table is rebuilt without that
# constraint), a document gets an owner (its first uploader), versions their uploader and job.
_MIGRATE_FROM_0 = """
CREATE TABLE documents_v1 (
    doc_id TEXT PRIMARY KEY, name TEXT NOT NULL, version INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL, sha256 TEXT NOT NULL DEFAULT '', size INTEGER NOT NULL DEFAULT 0,
    kind TEXT NOT NULL DEFAULT '', pages INTEGER, chunks INTEGER NOT NULL DEFAULT 0,
    error TEXT NOT NULL DEFAULT '', uploader TEXT NOT NULL DEFAULT '', groups TEXT NOT NULL DEFAULT '[]',
    owner TEXT NOT NULL DEFAULT '', created_at TEXT NOT NULL, updated_at TEXT NOT NULL
);
INSERT INTO documents_v1 SELECT doc_id, name, version, status, sha256, size, kind, pages, chunks, error,
    uploader, groups, uploader, created_at, updated_at FROM documents;
DROP TABLE documents;
ALTER TABLE documents_v1 RENAME TO documents;
CREATE INDEX documents_name ON documents (name);
ALTER TABLE versions ADD COLUMN uploader TEXT NOT NULL DEFAULT '';
ALTER TABLE versions ADD COLUMN job_id INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN doc_id TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN actor_groups TEXT NOT NULL DEFAULT '[]';
ALTER TABLE jobs ADD COLUMN actor_admin INTEGER NOT NULL DEFAULT 0;
UPDATE jobs SET groups = 'null' WHERE groups = '[]';
"""


def _document(row: sqlite3.Row) -> Document:
    fields = dict(row)
    fields["groups"] = tuple(json.loads(fields["groups"]))
    return Document(**fields)


def _job(row: sqlite3.Row) -> Job:
    fields = dict(row)
    groups = json.loads(fields["groups"])
    fields["groups"] = None if groups is None else tuple(groups)
    fields["actor_groups"] = tuple(json.loads(fields["actor_groups"]))
    fields["actor_admin"] = bool(fields["actor_admin"])
    return Job(**fields)


def _feedback(row: sqlite3.Row) -> Feedback:
    fields = dict(row)
    fields["chunk_ids"] = tuple(json.loads(fields["chunk_ids"]))
    return Feedback(**fields)


class SqliteCatalog:
    """The catalog in one SQLite file. Safe to share between threads and processes."""

    def __init__(self, path: Path):
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise data_dir_error(exc, path.parent) from exc
        self._lock = threading.RLock()
        try:
            self._db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.Error as exc:  # one line for people, whatever the cause, instead of a traceback
            raise self._unusable(exc) or DataDirError(f"the catalog {path} cannot be opened: {exc}") from exc

    def _migrate(self) -> None:
        """Create the tables, or bring a catalog written by an earlier kb up to SCHEMA_VERSION."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                version = self._db.execute("PRAGMA user_version").fetchone()[0]
                existing = self._db.execute("SELECT 1 FROM sqlite_master WHERE name = 'documents'").fetchone()
                if existing and version == 0:
                    for statement in _MIGRATE_FROM_0.split(";"):
                        if statement.strip():
                            self._db.execute(statement)
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def _unusable(self, exc: sqlite3.Error) -> DataDirError | None:
        """The full disk or unwritable data directory behind an SQLite error, if that is what it is."""
        code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF  # the primary code of an extended one
        if code == sqlite3.SQLITE_FULL:
            return no_space(self.path.parent)
        if code in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_PERM):
            # a full disk shows as an I/O error when SQLite cannot even create its shared-memory file
            full = shutil.disk_usage(self.path.parent).free < _NEARLY_FULL_BYTES
            return not_writable(self.path.parent) or (no_space(self.path.parent) if full else None)
        return None

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; BEGIN IMMEDIATE takes the write lock up front to avoid deadlocks.

        A full disk or a read-only data directory raises DataDirError; either way the transaction is
        rolled back as a whole, and the next one starts clean.
        """
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                    self._db.execute("COMMIT")
                except BaseException:
                    if self._db.in_transaction:  # SQLite may have rolled back already (full disk, I/O error)
                        self._db.execute("ROLLBACK")
                    raise
            except sqlite3.OperationalError as exc:
                clear = self._unusable(exc)
                if clear is None:
                    raise
                raise clear from exc

    def _query(self, sql: str, params: Sequence = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    # documents -------------------------------------------------------------------------------
    def documents(self) -> list[Document]:
        return [_document(r) for r in self._query("SELECT * FROM documents ORDER BY name")]

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

    def abort_version(self, doc_id: str, version: int, reason: str) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE versions SET status = 'failed', error = ? WHERE doc_id = ? AND version = ?",
                (reason, doc_id, version),
            )
            db.execute(
                "UPDATE documents SET error = ?, updated_at = ? WHERE doc_id = ?", (reason, now(), doc_id)
            )

    def record_failure(self, doc: Document, reason: str) -> None:
        with self._write() as db:
            self._ensure_document(db, doc, "failed", reason)

    def unserve(self, doc_id: str, reason: str) -> None:
        with self._write() as db:
            db.execute("UPDATE versions SET status = 'superseded' WHERE doc_id = ? AND status = 'ok'", (doc_id,))
            db.execute(
                "UPDATE documents SET version = 0, status = 'failed', chunks = 0, error = ?, updated_at = ?"
                " WHERE doc_id = ?",
                (reason, now(), doc_id),
            )

    def versions_in_progress(self) -> list[tuple[str, int]]:
        rows = self._query("SELECT doc_id, version FROM versions WHERE status = 'indexing'")
        return [(r["doc_id"], r["version"]) for r in rows]

    def mark_deleting(self, doc_id: str) -> None:
        with self._write() as db:
            db.execute("UPDATE documents SET status = 'deleting', updated_at = ? WHERE doc_id = ?", (now(), doc_id))

    def remove_document(self, doc_id: str) -> list[str]:
        with self._write() as db:
            blobs = {r["sha256"] for r in db.execute("SELECT sha256 FROM versions WHERE doc_id = ?", (doc_id,))}
            db.execute("DELETE FROM versions WHERE doc_id = ?", (doc_id,))
            db.execute("DELETE FROM documents WHERE doc_id = ?", (doc_id,))
            still_used = {
                r["sha256"] for r in db.execute("SELECT DISTINCT sha256 FROM versions")
            } | {r["blob"] for r in db.execute("SELECT blob FROM jobs WHERE status != 'done'")}
        return sorted(blobs - still_used)

    def update_counts(self, doc_id: str, pages: int | None, chunks: int) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE documents SET pages = ?, chunks = ? WHERE doc_id = ?", (pages, chunks, doc_id)
            )
            db.execute(
                "UPDATE versions SET pages = ?, chunks = ? WHERE doc_id = ? AND status = 'ok'",
                (pages, chunks, doc_id),
            )

    # jobs ------------------------------------------------------------------------------------
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
            return int(cursor.lastrowid)

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

    # feedback --------------------------------------------------------------------------------
    def save_feedback(self, feedback: Feedback) -> int:
        with self._write() as db:
            if feedback.id:
                cursor = db.execute(
                    "UPDATE feedback SET rating = ?, comment = ? WHERE id = ? AND user = ?",
                    (feedback.rating, feedback.comment, feedback.id, feedback.user),
                )
                if cursor.rowcount:
                    return feedback.id
            cursor = db.execute(
                "INSERT INTO feedback (user, question, query, answer, chunk_ids, rating, comment, mode, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (feedback.user, feedback.question, feedback.query, feedback.answer,
                 json.dumps(list(feedback.chunk_ids)), feedback.rating, feedback.comment, feedback.mode, now()),
            )
            return int(cursor.lastrowid)

    def feedback(self, limit: int | None = None) -> list[Feedback]:
        rows = self._query("SELECT * FROM feedback ORDER BY id DESC LIMIT ?", (-1 if limit is None else limit,))
        return [_feedback(r) for r in rows]

    # meta ------------------------------------------------------------------------------------
    def get_meta(self, key: str, default: str = "") -> str:
        rows = self._query("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0]["value"] if rows else default

    def set_meta(self, key: str, value: str) -> None:
        with self._write() as db:
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def close(self) -> None:
        with self._lock:
            self._db.close()
