"""What an answer looked like when it was shown, kept for audit (kb.catalog.answers), and its JSON row.

A citation is kept as the document id, version, chunk id and page it pointed at, with a hash of the passage
text, so a record keeps saying what was cited after the document gets a new version.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterable
from dataclasses import asdict
from typing import Any, Literal

from kb.feedback import spreadsheet_safe
from kb.records import Answer, AuditRecord, CitedPassage

FeedbackFilter = Literal["any", "rated", "up", "down", "unrated"]
CSV_COLUMNS = ("id", "time", "user", "question", "query", "answer", "mode", "found", "citations",
               "unsupported_claims", "rating", "comment")


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


def matching(records: Iterable[AuditRecord], doc_id: str | None = None, feedback: FeedbackFilter = "any",
             text: str = "") -> list[AuditRecord]:
    """The records citing `doc_id` (any version), with that feedback, whose question or answer holds `text`."""
    wanted = text.casefold()

    def keep(r: AuditRecord) -> bool:
        if doc_id is not None and all(c.doc_id != doc_id for c in r.citations):
            return False
        if feedback != "any" and not {"rated": r.rating is not None, "unrated": r.rating is None,
                                      "up": r.rating == 1, "down": r.rating == -1}[feedback]:
            return False
        return not wanted or wanted in r.question.casefold() or wanted in r.answer.casefold()

    return [r for r in records if keep(r)]


def audit_jsonl(records: Iterable[AuditRecord]) -> str:
    """One `audit_json` row per line: the same rows `kb audit --json` prints."""
    return "".join(json.dumps(audit_json(r), ensure_ascii=False) + "\n" for r in records)


def audit_csv(records: Iterable[AuditRecord]) -> str:
    """The audit log as CSV, every cell quoted and defused (kb.feedback.spreadsheet_safe): questions, answers
    and file names are typed by users or quoted from uploads, and open in spreadsheets."""
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_ALL)
    writer.writerow(CSV_COLUMNS)
    for r in records:
        cited = "; ".join(f"[{c.n}] {c.source} v{c.version}" + (f" p. {c.page}" if c.page else "") + f" ({c.chunk_id})"
                          for c in r.citations)
        unsupported = sum(not claim.get("supported") for claim in r.claims)
        values = (r.id, r.time, r.user, r.question, r.query, r.answer, r.mode, r.found, cited, unsupported,
                  "" if r.rating is None else r.rating, r.comment)
        writer.writerow([spreadsheet_safe(value) for value in values])
    return out.getvalue()
