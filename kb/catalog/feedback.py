"""Ratings and comments people leave on answers."""

from __future__ import annotations

import json
import sqlite3

from kb.catalog.database import Database, now
from kb.records import Feedback


def _feedback(row: sqlite3.Row) -> Feedback:
    fields = dict(row)
    fields["chunk_ids"] = tuple(json.loads(fields["chunk_ids"]))
    return Feedback(**fields)


class FeedbackLog(Database):
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
            return int(cursor.lastrowid or 0)

    def feedback(self, limit: int | None = None) -> list[Feedback]:
        rows = self._query("SELECT * FROM feedback ORDER BY id DESC LIMIT ?", (-1 if limit is None else limit,))
        return [_feedback(r) for r in rows]
