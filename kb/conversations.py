"""A turn's answer as JSON for the catalog, and back: every passage with its whole chunk, every claim.

A reopened conversation draws the same cards as when the answer was first shown (the passage text, its
pages, tables and sections), without searching again; the chunks' payload form is the index's own
(kb.index.base), so a stored turn reads the way a search result does.
"""

from __future__ import annotations

import json
from typing import Any

from kb.index.base import chunk_from_payload, chunk_to_payload
from kb.records import Answer, Citation, Claim, Passage

MAX_TITLE_CHARS = 80


def title_for(question: str) -> str:
    """A conversation's first title: its first question, on one line, cut at a word."""
    line = " ".join(question.split())
    if len(line) <= MAX_TITLE_CHARS:
        return line
    return line[:MAX_TITLE_CHARS].rsplit(" ", 1)[0] + "…"


def _passage(passage: Passage) -> dict[str, Any]:
    return {"chunk": chunk_to_payload(passage.chunk), "score": passage.score, "rank": passage.rank,
            "match_page": passage.match_page}


def _passage_from(data: dict[str, Any]) -> Passage:
    return Passage(chunk_from_payload(data["chunk"]), float(data["score"]), int(data["rank"]), data["match_page"])


def answer_to_json(answer: Answer) -> str:
    """The answer as the chat shows it: with citations, their passages only (the other retrieved passages
    are never drawn); without, the closest passages it shows instead."""
    return json.dumps({
        "text": answer.text, "mode": answer.mode, "found": answer.found,
        "citations": [{"n": c.n, "passage": _passage(c.passage)} for c in answer.citations],
        "passages": [] if answer.citations else [_passage(p) for p in answer.passages],
        "claims": [{"text": c.text, "cited": list(c.cited), "supported": c.supported, "reason": c.reason,
                    "support_words": list(c.support_words), "start": c.start, "end": c.end,
                    "evidence": [list(e) for e in c.evidence]} for c in answer.claims],
    })


def answer_from_json(text: str) -> Answer:
    data = json.loads(text)
    return Answer(
        text=data["text"], mode=data["mode"], found=bool(data["found"]),
        citations=[Citation(int(c["n"]), _passage_from(c["passage"])) for c in data["citations"]],
        passages=[_passage_from(p) for p in data["passages"]],
        claims=[
            Claim(c["text"], tuple(c["cited"]), bool(c["supported"]), c["reason"], tuple(c["support_words"]),
                  int(c["start"]), int(c["end"]), tuple((int(n), int(s), int(e)) for n, s, e in c["evidence"]))
            for c in data["claims"]
        ],
    )


def shown_documents(answer: Answer) -> set[str]:
    """Every document the chat shows a passage of with this answer: its citations', else the closest passages'."""
    if answer.citations:
        return {c.passage.chunk.doc_id for c in answer.citations}
    return {p.chunk.doc_id for p in answer.passages}
