"""What an answer looked like when it was shown, kept for audit (kb.catalog.answers), and its JSON row.

A citation is kept as the document id, version, chunk id and page it pointed at, with a hash of the passage
text, so a record keeps saying what was cited after the document gets a new version.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict
from typing import Any

from kb.records import Answer, AuditRecord, CitedPassage


def audit_record(answer: Answer, question: str, query: str, user: str) -> AuditRecord:
    """The record of `answer` as shown to `user` (not yet stored: id 0, time set by the catalog)."""
    citations = tuple(
        CitedPassage(c.n, c.passage.chunk.doc_id, c.passage.chunk.version, c.passage.chunk.chunk_id, c.passage.page,
                     hashlib.sha256(c.passage.chunk.text.encode("utf-8")).hexdigest(), c.passage.chunk.source,
                     c.passage.chunk.text)
        for c in answer.citations
    )
    claims = tuple({"text": c.text, "cited": list(c.cited), "supported": c.supported, "reason": c.reason}
                   for c in answer.claims)
    return AuditRecord(0, "", user, question, query, answer.text, answer.mode, answer.found, citations, claims)


def audit_json(record: AuditRecord) -> dict[str, Any]:
    """The row `kb audit --json` prints: {"id", "time", "user", "question", "query", "answer", "mode",
    "citations": [{"n", "doc_id", "version", "chunk_id", "page", "text_sha256"}], "claims", "feedback"}."""
    return {
        "id": record.id, "time": record.time, "user": record.user, "question": record.question,
        "query": record.query, "answer": record.answer, "mode": record.mode, "found": record.found,
        "citations": [{k: v for k, v in asdict(c).items() if k not in ("source", "text")} for c in record.citations],
        "claims": list(record.claims),
        "feedback": None if record.rating is None else {"rating": record.rating, "comment": record.comment},
    }
