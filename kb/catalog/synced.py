"""The files a folder sync handled (kb.sync): which document each became, and what the file was then."""

from __future__ import annotations

from kb.catalog.database import Database
from kb.records import SyncRecord


class SyncedFiles(Database):
    def synced(self, root: str) -> dict[str, SyncRecord]:
        """The records of one synced folder, by document name."""
        rows = self._query("SELECT * FROM synced_files WHERE root = ?", (root,))
        return {r["name"]: SyncRecord(**{**dict(r), "created": bool(r["created"])}) for r in rows}

    def remember_synced(self, record: SyncRecord) -> None:
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO synced_files (root, name, doc_id, created, size, mtime_ns, sha256, outcome,"
                " message) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (record.root, record.name, record.doc_id, int(record.created), record.size, record.mtime_ns,
                 record.sha256, record.outcome, record.message),
            )

    def forget_synced(self, root: str, name: str) -> None:
        with self._write() as db:
            db.execute("DELETE FROM synced_files WHERE root = ? AND name = ?", (root, name))
