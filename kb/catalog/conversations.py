"""Each user's conversations and their turns, so a conversation can be reopened and followed up later."""

from __future__ import annotations

import secrets
import sqlite3

from kb.catalog.database import Database, now
from kb.records import Conversation



def _conversation(row: sqlite3.Row) -> Conversation:
    return Conversation(row["id"], row["user"], row["title"], row["created_at"], row["updated_at"], row["turns"])


_SELECT = ("SELECT c.*, (SELECT COUNT(*) FROM conversation_turns t WHERE t.conversation_id = c.id) AS turns"
           " FROM conversations c")


class ConversationLog(Database):
    """The rows only: who may open which conversation is decided by KnowledgeBase (its user only)."""

    def new_conversation(self, user: str, title: str) -> str:
        conversation_id = secrets.token_hex(8)
        with self._write() as db:
            db.execute("INSERT INTO conversations (id, user, title, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
                       (conversation_id, user, title, now(), now()))
        return conversation_id

    def conversations(self, user: str, limit: int = 100) -> list[Conversation]:
        """The user's conversations, the most recently used first."""
        rows = self._query(f"{_SELECT} WHERE c.user = ? ORDER BY c.updated_at DESC, c.rowid DESC LIMIT ?",
                           (user, limit))
        return [_conversation(r) for r in rows]

    def conversation(self, conversation_id: str) -> Conversation | None:
        rows = self._query(f"{_SELECT} WHERE c.id = ?", (conversation_id,))
        return _conversation(rows[0]) if rows else None

    def add_turn(self, conversation_id: str, turn_id: str, question: str, query: str, answer_json: str,
                 answer_id: int) -> None:
        with self._write() as db:
            seq = db.execute("SELECT COALESCE(MAX(seq), -1) + 1 FROM conversation_turns WHERE conversation_id = ?",
                             (conversation_id,)).fetchone()[0]
            db.execute(
                "INSERT INTO conversation_turns (conversation_id, seq, turn_id, question, query, answer, answer_id,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (conversation_id, seq, turn_id, question, query, answer_json, answer_id, now()),
            )
            db.execute("UPDATE conversations SET updated_at = ? WHERE id = ?", (now(), conversation_id))

    def turn_rows(self, conversation_id: str) -> list[sqlite3.Row]:
        return self._query("SELECT * FROM conversation_turns WHERE conversation_id = ? ORDER BY seq",
                           (conversation_id,))

    def set_turn_feedback(self, conversation_id: str, turn_id: str, feedback_id: int) -> None:
        with self._write() as db:
            db.execute("UPDATE conversation_turns SET feedback_id = ? WHERE conversation_id = ? AND turn_id = ?",
                       (feedback_id, conversation_id, turn_id))

    def rename_conversation(self, conversation_id: str, title: str) -> None:
        with self._write() as db:
            db.execute("UPDATE conversations SET title = ? WHERE id = ?", (title, conversation_id))

    def delete_conversation(self, conversation_id: str) -> None:
        """The conversation and its turns; the audit log keeps its answers (its retention decides)."""
        with self._write() as db:
            db.execute("DELETE FROM conversation_turns WHERE conversation_id = ?", (conversation_id,))
            db.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))
