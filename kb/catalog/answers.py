"""The audit log: every answer as it was shown, with its citations' versions and text hashes."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict

from kb.catalog.database import Database, now
from kb.records import AuditRecord, CitedPassage


def _record(row: sqlite3.Row) -> AuditRecord:
    return AuditRecord(
        id=row["id"], time=row["created_at"], user=row["user"], question=row["question"], query=row["query"],
        answer=row["answer"], mode=row["mode"], found=bool(row["found"]),
        citations=tuple(CitedPassage(**c) for c in json.loads(row["citations"])),
        claims=tuple(json.loads(row["claims"])), rating=row["rating"], comment=row["comment"],
    )


class AnswerLog(Database):
    def record_answer(self, record: AuditRecord) -> int:
        with self._write() as db:
            cursor = db.execute(
                "INSERT INTO answers (user, question, query, answer, mode, found, citations, claims, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (record.user, record.question, record.query, record.answer, record.mode, int(record.found),
                 json.dumps([asdict(c) for c in record.citations]), json.dumps(list(record.claims)),
                 record.time or now()),
            )
            return int(cursor.lastrowid or 0)

    def rate_answer(self, answer_id: int, user: str, rating: int, comment: str) -> bool:
        """Note the rating its own user gave a recorded answer (False when it is not theirs or not there)."""
        with self._write() as db:
            cursor = db.execute("UPDATE answers SET rating = ?, comment = ? WHERE id = ? AND user = ?",
                                (rating, comment, answer_id, user))
            return bool(cursor.rowcount)

    def answers(self, since: str = "", user: str | None = None, limit: int | None = None) -> list[AuditRecord]:
        """Recorded answers, newest first, from `since` (an ISO date or time) on, of one user if given."""
        sql, args = "SELECT * FROM answers WHERE created_at >= ?", [since]
        if user is not None:
            sql += " AND user = ?"
            args.append(user)
        rows = self._query(sql + " ORDER BY id DESC LIMIT ?", (*args, -1 if limit is None else limit))
        return [_record(r) for r in rows]

    def answer(self, answer_id: int) -> AuditRecord | None:
        rows = self._query("SELECT * FROM answers WHERE id = ?", (answer_id,))
        return _record(rows[0]) if rows else None

    def forget_answers_before(self, time: str) -> int:
        """Retention: delete the answers recorded before `time`; how many went."""
        with self._write() as db:
            return int(db.execute("DELETE FROM answers WHERE created_at < ?", (time,)).rowcount)
