"""The serving index: the index generation searches read, the encoders that match it, and its swap.

One `ServingIndex` per process owns the index store, the generation being served, the sparse (BM25)
and dense encoders, and the warnings about how the served generation differs from the configuration.
It is the one place that decides whether search is hybrid or keyword-only (`mode`). A re-index or an
optimisation builds a new generation beside the served one and `swap`s it in under a lock; searches
already running on the old generation finish on it before it is closed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Literal

from kb.config import Settings
from kb.embedding import Bm25Encoder, DenseEmbedder, EmbeddingUnavailable, make_dense_embedder
from kb.errors import IndexBusy, IndexUnavailable
from kb.index import IndexedChunk, IndexLocked, IndexSpec, IndexStore, VectorIndex, open_index_store
from kb.records import Chunk

log = logging.getLogger(__name__)

RETIRED_INDEX_GRACE_S = 10.0  # how long a replaced generation stays open for searches already running on it

# Before the first re-index measures the corpus, BM25 assumes this share of a chunk's words survive
# stop-word removal (measured ~0.55-0.6 on the handbooks); the re-index replaces it with the real mean.
_TOKENS_PER_WORD = 0.6

SearchMode = Literal["hybrid", "keyword"]


def initial_avg_len(chunk_words: int) -> float:
    return max(32.0, chunk_words * _TOKENS_PER_WORD)


class ServingIndex:
    """The served index generation with its encoders; safe to share between the worker and readers."""

    def __init__(self, settings: Settings, busy_message: Callable[[], str]):
        self.settings = settings
        self._busy_message = busy_message  # who holds the index, when another process does
        self._lock = threading.RLock()
        self._store: IndexStore[Any] | None = None
        self._index: VectorIndex | None = None
        self._retiring: list[tuple[threading.Timer, VectorIndex]] = []
        self.generation = 0  # counts swaps in this process: what caches built on the index key on
        self.dense: DenseEmbedder | None = None
        self.dense_problem = ""  # why the configured dense model could not be loaded ("" when it was)
        self._dense_tried = False
        self.sparse = Bm25Encoder(avg_len=initial_avg_len(settings.chunk_words))
        self.warnings: list[str] = []  # how the served generation differs from the configuration

    # opening and closing ---------------------------------------------------------------------
    @property
    def is_open(self) -> bool:
        return self._index is not None

    def open(self) -> None:
        """Open the served generation (creating an empty one the first time); IndexBusy when another
        process holds the embedded index."""
        with self._lock:
            if self._index is not None:
                return
            self._load_dense()
            store = open_index_store(self.settings)
            try:
                index = store.open_current()
            except IndexLocked as exc:
                raise IndexBusy(self._busy_message()) from exc
            if index is None:
                index = store.create(self.spec_for(None))
                store.promote(index)
            self._store = store
            self._serve(index)

    def _load_dense(self) -> None:
        """Load the configured dense model once: a retry after a failed open reuses the outcome."""
        if self._dense_tried:
            return
        self._dense_tried = True
        try:
            self.dense = make_dense_embedder(self.settings)
        except EmbeddingUnavailable as exc:
            self.dense_problem = str(exc)

    def close(self) -> None:
        """Close every generation still open; a failure to save the served one is raised last."""
        with self._lock:
            for timer, retired in self._retiring:
                timer.cancel()
                retired.close()
            self._retiring.clear()
            if self._index is not None:
                index, self._index = self._index, None
                index.close()

    @property
    def index(self) -> VectorIndex:
        """The generation serving now (opened on first use)."""
        index = self._index
        if index is None:
            self.open()
            index = self._index
            if index is None:  # open() either serves a generation or raises
                raise IndexUnavailable("the index could not be opened")
        return index

    @property
    def store(self) -> IndexStore[Any]:
        if self._store is None:
            self.open()
        if self._store is None:
            raise IndexUnavailable("the index could not be opened")
        return self._store

    # the one decision: hybrid or keyword -----------------------------------------------------
    @property
    def mode(self) -> SearchMode:
        """Hybrid when a dense model is loaded, weighed (KB_DENSE_WEIGHT=0 turns a weak model off
        without a re-index) and the served generation was built with that same model."""
        weighed = self.settings.dense_weight > 0
        return "hybrid" if self.dense is not None and weighed and self._dense_matches() else "keyword"

    def _dense_matches(self) -> bool:
        configured = self.dense.model_id if self.dense else None
        return self._index is None or self._index.spec.dense_model == configured

    @property
    def query_dense(self) -> DenseEmbedder | None:
        """The dense model searches embed queries with: only in hybrid mode."""
        return self.dense if self.mode == "hybrid" else None

    # encoding --------------------------------------------------------------------------------
    def spec_for(self, bm25_avg_len: float | None) -> IndexSpec:
        """How a new generation built now is made: the configured models and chunk size, and BM25
        normalised by the corpus's mean chunk length (None: not measured yet, assume one)."""
        return IndexSpec(
            dense_model=self.dense.model_id if self.dense else None,
            dense_dim=self.dense.dim if self.dense else None,
            bm25_avg_len=bm25_avg_len or initial_avg_len(self.settings.chunk_words),
            chunk_words=self.settings.chunk_words,
        )

    def encode(self, chunks: list[Chunk], into: IndexSpec | None = None) -> list[IndexedChunk]:
        """Vectors for chunks going into the served generation, or into a new one built to `into`.

        Dense vectors are made when the target was built with the loaded model: a new generation always
        is; the served one only when it matches (else its points stay keyword-only until a re-index)."""
        texts = [c.indexed_text for c in chunks]
        sparse = self.sparse if into is None else Bm25Encoder(avg_len=into.bm25_avg_len)
        sparse_vectors = sparse.encode_documents(texts)
        dense_vectors: list[list[float] | None] = [None] * len(chunks)
        if self.dense is not None and (into is not None or self._dense_matches()):
            dense_vectors = list(self.dense.embed_documents(texts))
        return [IndexedChunk(c, s, d) for c, s, d in zip(chunks, sparse_vectors, dense_vectors)]

    # generations -----------------------------------------------------------------------------
    def create(self, spec: IndexSpec) -> VectorIndex:
        """A new, empty generation beside the served one (not served until `finish` and `swap`)."""
        return self.store.create(spec)

    def finish(self, index: VectorIndex) -> VectorIndex:
        """The new generation made ready to serve (optimised); discarded if that fails."""
        try:
            return self.store.optimize(index)
        except BaseException:
            self.discard(index)
            raise

    def discard(self, index: VectorIndex) -> None:
        self.store.discard(index)

    def swap(self, new_index: VectorIndex) -> None:
        """Serve `new_index` from now on; searches in flight finish on the old one, closed a little later."""
        with self._lock:
            self.store.promote(new_index)
            old = self._index
            self._serve(new_index)
            if old is not None and old is not new_index:
                timer = threading.Timer(RETIRED_INDEX_GRACE_S, old.close)
                timer.daemon = True
                timer.start()
                self._retiring.append((timer, old))

    def _serve(self, index: VectorIndex) -> None:
        self._index = index
        self.sparse = Bm25Encoder(avg_len=index.spec.bm25_avg_len)
        self.generation += 1
        self.warnings = self._spec_warnings(index.spec)

    def _spec_warnings(self, spec: IndexSpec) -> list[str]:
        """How the served generation differs from the configuration (a re-index resolves them)."""
        found = []
        if self.dense_problem:
            found.append(f"dense embeddings off: {self.dense_problem}; using keyword search only")
        if not self._dense_matches():
            found.append(
                f"the index was built with dense model {spec.dense_model or 'none'} but "
                f"{self.dense.model_id if self.dense else 'none'} is configured: searching by keywords "
                "only until `kb reindex` rebuilds it"
            )
        words = self.settings.chunk_words
        if spec.chunk_words is not None and spec.chunk_words != words:
            found.append(
                f"the index holds chunks of about {spec.chunk_words} words but KB_CHUNK_WORDS is "
                f"{words}: new uploads use {words}; re-index to apply it to all"
            )
        return found

    def compact_if_due(self) -> bool:
        """Swap in an optimised copy once KB_OPTIMIZE_AFTER chunks were written since the last one: new
        chunks sit in a segment searched by brute force, slower as it grows. Called by the queue's
        worker between jobs, so nothing writes meanwhile; searches keep reading the served generation."""
        index = self._index
        if index is None or self._store is None or index.unoptimized < self.settings.optimize_after:
            return False
        try:
            compacted = self._store.compact(index)
        except Exception as exc:  # a full disk, say: the served generation is untouched and complete
            log.warning("could not optimize the index: %s", exc)
            return False
        if compacted is None:
            return False
        self.swap(compacted)
        return True

    def describe(self) -> dict[str, Any]:
        """Where the index lives (backend, generation, collection), for stats and health."""
        return self._store.describe() if self._store is not None else {}
