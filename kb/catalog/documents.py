"""The documents and their versions: what is served, what is being written, what failed."""

from __future__ import annotations

import json
import sqlite3
from typing import Sequence

from kb.catalog.database import Database, _document, now
from kb.records import Document


class Documents(Database):
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

