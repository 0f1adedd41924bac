"""Feedback on answers: building the record from an answer, and the CSV an admin exports.

The CSV is opened in spreadsheets, and its cells hold text typed by users and quoted from uploaded
files. A spreadsheet may split a line at a comma, a semicolon (European locales), a tab or a bar,
and some ignore quotes, so every cell is quoted and `spreadsheet_safe` defuses every piece of it
that could start a formula; the app's tables use the same function, since their cells can leave
the app too (the table's own "Download as CSV", copy and paste).
"""

from __future__ import annotations

import csv
import io
import re
from typing import Iterable, TypeVar

from kb.errors import BadRequest
from kb.records import Answer, Feedback

MAX_COMMENT_CHARS = 2000
CSV_COLUMNS = (
    "id", "created_at", "user", "rating", "comment", "question", "query", "answer", "cited_chunk_ids", "mode",
)
# A piece starts at the start of a cell or after a character a spreadsheet may split at (a
# separator, or a line break for one that ignores quotes); spaces and double quotes (which a reader
# may trim) can come before the character that makes it a formula (= + - @).
_FORMULA_PIECE = re.compile(r'(^|[,;\t|\r\n])([\s"]*)(?=[=+\-@])')
T = TypeVar("T")


class BadFeedback(BadRequest):
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
    writer = csv.writer(out, quoting=csv.QUOTE_ALL)
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        values = (row.id, row.created_at, row.user, row.rating, row.comment, row.question, row.query,
                  row.answer, " ".join(row.chunk_ids), row.mode)
        writer.writerow([spreadsheet_safe(value) for value in values])
    return out.getvalue()


def spreadsheet_safe(value: T) -> T:
    """`value` with a ' before every = + - @ that would start a formula in some spreadsheet.

    That is the first such character of the text and of every piece after , ; tab | or a line
    break, with only spaces or double quotes between: `x;=1+1` becomes `x;'=1+1`. Other values
    (numbers, None) are returned as they are; applying it twice changes nothing more."""
    if not isinstance(value, str):
        return value
    return _FORMULA_PIECE.sub(r"\1\2'", value)  # type: ignore[return-value]
