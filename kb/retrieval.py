"""Query -> ranked passages: encode the question, search the serving index, keep current versions only.

With a dense model, the index is searched twice, by keywords and by meaning, and the two rankings are
fused here (`fuse`), with a weight that says how much the dense model is trusted.

The index is asked for a few more hits than wanted: for a short while after a document is replaced,
chunks of its old version can still sit in the index (they are dropped here, not shown), and the
candidates are re-ranked with their documents' evidence so that one document does not fill the list
(`diversified`). Re-ranking 50 candidates instead of k + 10 changed no figure on docugami or the
Anthropic docs and made a query 1.7x slower (reading 50 payloads), docs/benchmarks.md "Step 7".
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Hashable
from typing import TYPE_CHECKING, Callable, Literal, TypeVar

from kb.index import SearchFilter, with_chunks
from kb.records import Chunk, Passage, SparseVector

if TYPE_CHECKING:
    from kb.embedding import Bm25Encoder, DenseEmbedder
    from kb.index import VectorIndex

log = logging.getLogger(__name__)

# Extra hits fetched so that dropping chunks of superseded versions still leaves k passages.
SUPERSEDED_HEADROOM = 10
# In hybrid search each side fetches at least this many candidates: with only k per side a passage
# ranked just below the cut on both sides is lost before fusion could raise it.
MIN_CANDIDATES = 50
# A passage's score: (1 - w) * its own normalised score + w * its document's evidence (see `diversified`);
# each further passage of a document already listed counts REPEAT_DECAY times less. Measured on docugami
# (20 filings) and the Anthropic docs (232 small files), docs/benchmarks.md "Step 7": 0.3 and 0.5 lift both;
# a heavier document weight helps the long filings and costs the small files.
DOCUMENT_WEIGHT = 0.3
REPEAT_DECAY = 0.5
# A question that asks for "the latest" or "most recent" report lifts newer documents: each candidate gains
# RECENCY_WEIGHT x its document's date placed between the oldest (0) and newest (1) candidate document.
# Documents without a date of their own gain nothing. Tuned on docugami, docs/benchmarks.md "Step 7: recency".
RECENCY_WEIGHT = 0.3
_ASKS_LATEST = re.compile(r"\b(?:latest|most[ -]recent|newest|most[ -]up[ -]to[ -]date)\b", re.IGNORECASE)


class Retriever:
    """Searches whichever index is serving at the moment of the call (a re-index may swap it)."""

    def __init__(
        self,
        index: Callable[[], VectorIndex],
        sparse: Bm25Encoder,
        dense: DenseEmbedder | None = None,
        dense_weight: float = 0.5,  # equal say; the product passes KB_DENSE_WEIGHT
        is_current: Callable[[list[Chunk], SearchFilter | None], list[bool]] | None = None,
        keywords: bool = True,
    ):
        self._index = index
        self._sparse = sparse
        self._dense = dense
        self._dense_weight = dense_weight
        self._is_current = is_current
        self._keywords = keywords  # False: by meaning alone (measuring a dense model)

    @property
    def mode(self) -> Literal["hybrid", "keyword"]:
        return "hybrid" if self._dense is not None else "keyword"

    def search(self, query: str, k: int = 5, flt: SearchFilter | None = None) -> list[Passage]:
        """The k best passages, ranked 1..k; [] for a blank query or one with nothing to match."""
        if not query.strip():
            return []
        sparse = self._sparse.encode_query(query) if self._keywords else SparseVector([], [])
        dense = self._embed(query)
        if not sparse.indices and dense is None:  # only stop words ("what is it?")
            return []
        index, limit = self._index(), k + SUPERSEDED_HEADROOM
        if dense is None:
            ranked = index.search_ids(sparse, limit, flt)
        else:
            depth = max(limit, MIN_CANDIDATES)
            by_words, by_meaning = index.search_ids(sparse, depth, flt), index.search_ids(dense, depth, flt)
            ranked = fuse(by_words, by_meaning, self._dense_weight)[:limit]
        hits = with_chunks(index, ranked)  # only the winners' texts are read
        if self._is_current is not None and hits:
            current = self._is_current([chunk for chunk, _ in hits], flt)
            hits = [hit for hit, keep in zip(hits, current) if keep]
        recency = RECENCY_WEIGHT if asks_for_latest(query) else 0.0
        hits = diversified(hits, k, DOCUMENT_WEIGHT, REPEAT_DECAY, recency)
        terms = set(sparse.indices) or set(self._sparse.encode_query(query).indices)
        return [
            Passage(chunk, score, rank, match_page=matched_page(chunk, terms, self._sparse.query_terms))
            for rank, (chunk, score) in enumerate(hits[:k], start=1)
        ]

    def _embed(self, query: str) -> list[float] | None:
        """The dense query vector; if the embedding model fails (a remote endpoint is down), keywords only."""
        if self._dense is None:
            return None
        try:
            return self._dense.embed_query(query)
        except Exception as exc:
            log.warning("dense embedding failed, searching by keywords only: %s", exc)
            return None


def asks_for_latest(query: str) -> bool:
    """Whether the question asks for the newest document ("the latest 10-Q", "most recent policy")."""
    return bool(_ASKS_LATEST.search(query))


def diversified(
    hits: list[tuple[Chunk, float]], k: int, document_weight: float, decay: float, recency: float = 0.0
) -> list[tuple[Chunk, float]]:
    """The k best of `hits` (best first), each scored by its own match and its document's, and each further
    passage of a document already chosen discounted, so one document does not fill the list.

    A document's evidence is the sum of its candidates' normalised scores, each next one counting half as
    much: a filing whose other passages also match "Apple" lifts its net-sales table, which never names the
    company. With `recency` > 0 newer documents gain up to that much (`newness`)."""
    if not hits:
        return []
    top = max(score for _, score in hits) or 1.0
    own = [score / top for _, score in hits]
    evidence: dict[str, float] = {}
    seen: dict[str, int] = {}
    for (chunk, _), score in zip(hits, own):
        n = seen.get(chunk.doc_id, 0)
        evidence[chunk.doc_id] = evidence.get(chunk.doc_id, 0.0) + score * 0.5**n
        seen[chunk.doc_id] = n + 1
    best_doc = max(evidence.values())
    new = newness([chunk for chunk, _ in hits]) if recency else {}
    base = [
        (1 - document_weight) * score + document_weight * evidence[chunk.doc_id] / best_doc
        + recency * new.get(chunk.doc_id, 0.0)
        for (chunk, _), score in zip(hits, own)
    ]
    chosen: list[tuple[Chunk, float]] = []
    left = list(range(len(hits)))
    taken: dict[str, int] = {}
    while left and len(chosen) < k:
        pick = max(left, key=lambda i: (base[i] * decay ** taken.get(hits[i][0].doc_id, 0), -i))
        left.remove(pick)
        doc = hits[pick][0].doc_id
        taken[doc] = taken.get(doc, 0) + 1
        chosen.append((hits[pick][0], base[pick] * decay ** (taken[doc] - 1)))
    return chosen


def newness(chunks: list[Chunk]) -> dict[str, float]:
    """Each dated document's date placed between the oldest (0.0) and the newest (1.0) of `chunks`' documents;
    {} when fewer than two dates differ."""
    days: dict[str, int] = {}
    for chunk in chunks:
        if chunk.date and chunk.doc_id not in days:
            try:
                days[chunk.doc_id] = dt.date.fromisoformat(chunk.date).toordinal()
            except ValueError:
                continue
    if not days or (span := max(days.values()) - min(days.values())) == 0:
        return {}
    oldest = min(days.values())
    return {doc_id: (day - oldest) / span for doc_id, day in days.items()}


_WORD = re.compile(r"\w+(?:['’]\w+)*")


def matched_page(chunk: Chunk, terms: set[int], terms_of: Callable[[str], set[int]]) -> int | None:
    """The page of a chunk that holds most of the query's distinct matched terms (ties: more matched words,
    then the earlier page). Counting distinct terms rather than every occurrence: on 300 known-item
    questions over the docugami PDFs (bench/page_questions.py) exact page hit@1 0.570 -> 0.583, @5 0.857 -> 0.880.

    A chunk crossing pages 12-13 that matches on 13 is cited as page 13, not as the page it starts
    on; None when the chunk spans at most one page (its page says it all)."""
    if len(chunk.page_starts) < 2 or not terms:
        return None
    counts: dict[int, int] = {}
    distinct: dict[int, set[int]] = {}
    matches: dict[str, set[int]] = {}  # a passage repeats its words: analyse each once
    for word in _WORD.finditer(chunk.text):
        key = word.group(0).lower()
        if key not in matches:
            matches[key] = terms_of(key) & terms
        if matches[key]:
            page = chunk.page_at(word.start())
            if page is not None:
                counts[page] = counts.get(page, 0) + 1
                distinct.setdefault(page, set()).update(matches[key])
    if not counts:
        return None
    return min(counts, key=lambda page: (-len(distinct[page]), -counts[page], page))


Key = TypeVar("Key", bound=Hashable)


def fuse(keyword: list[tuple[Key, float]], dense: list[tuple[Key, float]], dense_weight: float) -> list[tuple[Key, float]]:
    """Hybrid ranking: (1 - w) * keyword score + w * dense score, each min-max normalised over its own list.

    A point absent from one list gets 0 from it. Measured against reciprocal rank fusion (what Qdrant
    offers; its weights barely move a ranking at k=60): on SciFact with all-MiniLM-L6-v2, nDCG@10 0.733
    against 0.711, and the weight really weighs, so a weak model can be given little say (docs/benchmarks.md).
    """
    weight = min(max(dense_weight, 0.0), 1.0)
    scores: dict[Key, float] = {}
    for hits, share in ((keyword, 1.0 - weight), (dense, weight)):
        for key, score in _normalised(hits):
            scores[key] = scores.get(key, 0.0) + share * score
    return sorted(scores.items(), key=lambda item: item[1], reverse=True)


def _normalised(hits: list[tuple[Key, float]]) -> list[tuple[Key, float]]:
    """Scores mapped onto 0..1 (best 1, last 0); all 1 when they are equal."""
    if not hits:
        return []
    high, low = max(score for _, score in hits), min(score for _, score in hits)
    span = high - low
    return [(key, (score - low) / span if span else 1.0) for key, score in hits]
