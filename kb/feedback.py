"""Feedback on answers: building the record from an answer, and the CSV an admin exports.

The CSV is opened in spreadsheets, and its cells hold text typed by users and quoted from uploaded
files, so a cell that a spreadsheet would run as a formula (=, +, -, @, tab, CR) is prefixed with '.
"""

from __future__ import annotations

import csv
import io
from typing import Iterable

from kb.records import Answer, Feedback

MAX_COMMENT_CHARS = 2000
CSV_COLUMNS = (
    "id", "created_at", "user", "rating", "comment", "question", "query", "answer", "cited_chunk_ids", "mode",
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class BadFeedback(ValueError):
    """Feedback that cannot be stored; the message says why."""


def feedback_for(
    answer: Answer, question: str, query: str, user: str, rating: int, comment: str = "", feedback_id: int = 0
) -> Feedback:
    """The record of a rating on `answer`; raises BadFeedback for a rating other than +1/-1."""
    if rating not in (1, -1):
        raise BadFeedback(f"a rating is 1 (thumbs up) or -1 (thumbs down), not {rating!r}")
    comment = comment.strip()
    if len(comment) > MAX_COMMENT_CHARS:
        raise BadFeedback(f"the comment is longer than {MAX_COMMENT_CHARS} characters")
    return Feedback(
        id=feedback_id, user=user, question=question, query=query, answer=answer.text,
        chunk_ids=tuple(c.passage.chunk.chunk_id for c in answer.citations),
        rating=rating, comment=comment, mode=answer.mode,  # type: ignore[arg-type]
    )


def to_csv(rows: Iterable[Feedback]) -> str:
    """The feedback log as CSV, one row per rating, safe to open in a spreadsheet."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        values = (row.id, row.created_at, row.user, row.rating, row.comment, row.question, row.query,
                  row.answer, " ".join(row.chunk_ids), row.mode)
        writer.writerow([_inert(value) for value in values])
    return out.getvalue()


def _inert(value: object) -> object:
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value
