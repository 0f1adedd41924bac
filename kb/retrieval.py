"""Query -> ranked passages: encode the question, search the serving index, keep current versions only.

The index is asked for a few more hits than wanted because, for a short while after a document is
replaced, chunks of its old version can still sit in the index; they are dropped here, not shown.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Callable, Literal

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever

from kb.index import SearchFilter
from kb.records import Chunk, Passage

if TYPE_CHECKING:
    from kb.embedding import Bm25Encoder, DenseEmbedder
    from kb.index import VectorIndex

log = logging.getLogger(__name__)

# Extra hits fetched so that dropping chunks of superseded versions still leaves k passages.
SUPERSEDED_HEADROOM = 10


class Retriever:
    """Searches whichever index is serving at the moment of the call (a re-index may swap it)."""

    def __init__(
        self,
        index: Callable[[], VectorIndex],
        sparse: Bm25Encoder,
        dense: DenseEmbedder | None = None,
        dense_weight: float = 1.0,
        is_current: Callable[[list[Chunk]], list[bool]] | None = None,
    ):
        self._index = index
        self._sparse = sparse
        self._dense = dense
        self._dense_weight = dense_weight
        self._is_current = is_current

    @property
    def mode(self) -> Literal["hybrid", "keyword"]:
        return "hybrid" if self._dense is not None else "keyword"

    def search(self, query: str, k: int = 5, flt: SearchFilter | None = None) -> list[Passage]:
        """The k best passages, ranked 1..k; [] for a blank query or one with nothing to match."""
        if not query.strip():
            return []
        sparse = self._sparse.encode_query(query)
        dense = self._embed(query)
        if not sparse.indices and dense is None:  # only stop words ("what is it?")
            return []
        hits = self._index().search(
            sparse, dense, limit=k + SUPERSEDED_HEADROOM, flt=flt, dense_weight=self._dense_weight
        )
        if self._is_current is not None and hits:
            current = self._is_current([chunk for chunk, _ in hits])
            hits = [hit for hit, keep in zip(hits, current) if keep]
        return [Passage(chunk, score, rank) for rank, (chunk, score) in enumerate(hits[:k], start=1)]


    def _embed(self, query: str) -> list[float] | None:
        """The dense query vector; if the embedding model fails (a remote endpoint is down), keywords only."""
        if self._dense is None:
            return None
        try:
            return self._dense.embed_query(query)
        except Exception as exc:
            log.warning("dense embedding failed, searching by keywords only: %s", exc)
            return None


class KBRetriever(BaseRetriever):
    """LangChain face of a Retriever, so it can sit in an LCEL chain. Each Document carries its Passage."""

    retriever: Retriever
    k: int = 5
    flt: SearchFilter | None = None

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        return [_document(p) for p in self.retriever.search(query, k=self.k, flt=self.flt)]


def _document(passage: Passage) -> Document:
    chunk = passage.chunk
    return Document(
        page_content=chunk.text,
        metadata={
            "passage": passage,
            "doc_id": chunk.doc_id,
            "chunk_id": chunk.chunk_id,
            "source": chunk.source,
            "page": chunk.page_start,
            "section": chunk.section,
            "score": passage.score,
            "rank": passage.rank,
        },
    )


def passages_from_documents(docs: list[Document]) -> list[Passage]:
    """The Passages behind Documents made by KBRetriever, in the same order."""
    return [doc.metadata["passage"] for doc in docs]
