"""The catalog's database: one SQLite file, its schema and migrations, and one-transaction writes.

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

from kb.records import Document, FailedAttempt, Job
from kb.storage import DataDirError, make_dir, no_space, not_writable

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


SCHEMA_VERSION = 4  # PRAGMA user_version; 0 is the first release (names unique, no owners)

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
    doc_id TEXT NOT NULL DEFAULT '', actor_groups TEXT NOT NULL DEFAULT '[]', actor_admin INTEGER NOT NULL DEFAULT 0,
    done INTEGER NOT NULL DEFAULT 0, total INTEGER NOT NULL DEFAULT 0,
    batch INTEGER NOT NULL DEFAULT 0, started_at TEXT NOT NULL DEFAULT '',
    cancel_requested INTEGER NOT NULL DEFAULT 0, cleared INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, id);
CREATE INDEX IF NOT EXISTS jobs_uploader ON jobs (uploader, id);
CREATE TABLE IF NOT EXISTS failed_attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, reason TEXT NOT NULL, created_at TEXT NOT NULL,
    uploader TEXT NOT NULL DEFAULT '', doc_id TEXT NOT NULL DEFAULT '', blob TEXT NOT NULL DEFAULT '',
    size INTEGER NOT NULL DEFAULT 0, groups TEXT NOT NULL DEFAULT 'null', actor_groups TEXT NOT NULL DEFAULT '[]',
    actor_admin INTEGER NOT NULL DEFAULT 0, job_id INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS synced_files (
    root TEXT NOT NULL, name TEXT NOT NULL, doc_id TEXT NOT NULL, created INTEGER NOT NULL,
    size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, sha256 TEXT NOT NULL, outcome TEXT NOT NULL,
    message TEXT NOT NULL DEFAULT '', PRIMARY KEY (root, name)
);
CREATE TABLE IF NOT EXISTS answers (
    id INTEGER PRIMARY KEY AUTOINCREMENT, user TEXT NOT NULL, question TEXT NOT NULL, query TEXT NOT NULL,
    answer TEXT NOT NULL, mode TEXT NOT NULL, found INTEGER NOT NULL, citations TEXT NOT NULL DEFAULT '[]',
    claims TEXT NOT NULL DEFAULT '[]', rating INTEGER, comment TEXT NOT NULL DEFAULT '', created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS answers_time ON answers (created_at);
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY, user TEXT NOT NULL, title TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS conversations_user ON conversations (user, updated_at);
CREATE TABLE IF NOT EXISTS conversation_turns (
    conversation_id TEXT NOT NULL, seq INTEGER NOT NULL, turn_id TEXT NOT NULL, question TEXT NOT NULL,
    query TEXT NOT NULL, answer TEXT NOT NULL, answer_id INTEGER NOT NULL DEFAULT 0,
    feedback_id INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL, PRIMARY KEY (conversation_id, seq)
);
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

# Version 2: a running job's progress is kept with the job, so any process (the app while `kb worker`
# re-indexes) can show it.
_MIGRATE_FROM_1 = """
ALTER TABLE jobs ADD COLUMN done INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN total INTEGER NOT NULL DEFAULT 0;
"""

# Version 3 (job control): "Your uploads" come from the catalog, so jobs say which files were submitted
# together (batch, for the ETA), when a worker took them, whether someone asked to cancel them, and
# whether their submitter cleared them off the list.
_MIGRATE_FROM_2_JOB_CONTROL = """
ALTER TABLE jobs ADD COLUMN batch INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN started_at TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN cleared INTEGER NOT NULL DEFAULT 0;
UPDATE jobs SET batch = id;
UPDATE jobs SET cleared = 1 WHERE status = 'done';
"""

# Version 4: failed uploads are attempts, not documents. The version-0 rows earlier releases kept for
# them (a .wav, an empty file) move to `failed_attempts`; a document a re-index could no longer parse
# keeps its row and history (it has superseded versions) and gets an attempt naming it. Rows of an
# ingest still in progress are left to recovery.
_MIGRATE_FROM_3_FAILED_ATTEMPTS = """
CREATE TABLE IF NOT EXISTS failed_attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, reason TEXT NOT NULL, created_at TEXT NOT NULL,
    uploader TEXT NOT NULL DEFAULT '', doc_id TEXT NOT NULL DEFAULT '', blob TEXT NOT NULL DEFAULT '',
    size INTEGER NOT NULL DEFAULT 0, groups TEXT NOT NULL DEFAULT 'null', actor_groups TEXT NOT NULL DEFAULT '[]',
    actor_admin INTEGER NOT NULL DEFAULT 0, job_id INTEGER NOT NULL DEFAULT 0
);
CREATE TEMP TABLE husks AS SELECT d.doc_id, EXISTS (
    SELECT 1 FROM versions v WHERE v.doc_id = d.doc_id AND v.status IN ('ok', 'superseded')) AS kept_row
    FROM documents d WHERE d.version = 0 AND d.status = 'failed'
    AND NOT EXISTS (SELECT 1 FROM versions v WHERE v.doc_id = d.doc_id AND v.status = 'indexing');
INSERT INTO failed_attempts (name, reason, created_at, uploader, doc_id, blob, size, groups)
    SELECT d.name, CASE WHEN d.error = '' THEN 'failed' ELSE d.error END, d.updated_at,
    CASE WHEN h.kept_row THEN d.owner ELSE d.uploader END, CASE WHEN h.kept_row THEN d.doc_id ELSE '' END,
    d.sha256, d.size, CASE WHEN h.kept_row THEN 'null' ELSE d.groups END
    FROM documents d JOIN husks h ON h.doc_id = d.doc_id;
DELETE FROM versions WHERE doc_id IN (SELECT doc_id FROM husks WHERE NOT kept_row);
DELETE FROM documents WHERE doc_id IN (SELECT doc_id FROM husks WHERE NOT kept_row);
DROP TABLE husks;
"""

# What brings a catalog of each schema version up to SCHEMA_VERSION: the migrations from it on, in order.
_MIGRATIONS = [_MIGRATE_FROM_0, _MIGRATE_FROM_1, _MIGRATE_FROM_2_JOB_CONTROL, _MIGRATE_FROM_3_FAILED_ATTEMPTS]
assert len(_MIGRATIONS) == SCHEMA_VERSION, "each schema version needs its migration"


def _document(row: sqlite3.Row) -> Document:
    fields = dict(row)
    fields["groups"] = tuple(json.loads(fields["groups"]))
    return Document(**fields)


def _attempt(row: sqlite3.Row, kept: bool) -> FailedAttempt:
    fields = dict(row)
    groups = json.loads(fields["groups"])
    fields["groups"] = None if groups is None else tuple(groups)
    fields["actor_groups"] = tuple(json.loads(fields["actor_groups"]))
    fields["actor_admin"] = bool(fields["actor_admin"])
    return FailedAttempt(**fields, kept=kept)


def _job(row: sqlite3.Row) -> Job:
    fields = dict(row)
    groups = json.loads(fields["groups"])
    fields["groups"] = None if groups is None else tuple(groups)
    fields["actor_groups"] = tuple(json.loads(fields["actor_groups"]))
    for flag in ("actor_admin", "cancel_requested", "cleared"):
        fields[flag] = bool(fields[flag])
    return Job(**fields)


class Database:
    """The catalog's SQLite file: connection, schema and migrations, one-transaction writes, meta.

    Safe to share between threads and processes; the tables' own verbs live in the classes that
    make up `SqliteCatalog` (documents, jobs, feedback)."""

    def __init__(self, path: Path):
        self.path = path
        make_dir(path.parent, path.parent)
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
                if existing:
                    steps = "".join(_MIGRATIONS[version:])
                    for statement in steps.split(";"):
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

    # meta ------------------------------------------------------------------------------------
    def get_meta(self, key: str, default: str = "") -> str:
        rows = self._query("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0]["value"] if rows else default

    def meta_starting(self, prefix: str) -> dict[str, str]:
        """Every meta value whose key starts with `prefix` (e.g. each folder's last sync)."""
        rows = self._query("SELECT key, value FROM meta WHERE substr(key, 1, ?) = ? ORDER BY key", (len(prefix), prefix))
        return {r["key"]: r["value"] for r in rows}

    def set_meta(self, key: str, value: str) -> None:
        with self._write() as db:
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def close(self) -> None:
        with self._lock:
            self._db.close()
