"""What both index backends share: the records and protocols, point ids and payloads, filters, scrolling.

Both backends hold the same points (one per chunk, id = uuid5 of the chunk id, payload = the chunk's
fields) with a "bm25" sparse vector scored with IDF and, when a dense model is configured, a "dense"
cosine vector. Indexes come in generations so a rebuild is filled on the side and swapped in at once.
Filters always run inside the query, never on its results.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, fields
from typing import Any, Generic, Protocol, TypeVar

from kb.records import Chunk, SparseVector, TableSpan

SPARSE = "bm25"
DENSE = "dense"
SCROLL_PAGE = 1000
_CHUNK_IDS = uuid.UUID("6f1c1c52-53a8-4a67-9a1e-8f0e4f0b6c1d")  # namespace of point ids; never change it


@dataclass(frozen=True)
class IndexSpec:
    """How an index's vectors were made. Recorded with the index; a mismatch is reported, never mixed."""

    dense_model: str | None  # DenseEmbedder.model_id, or None for keyword only
    dense_dim: int | None
    bm25_avg_len: float
    chunk_words: int | None = None  # KB_CHUNK_WORDS its chunks were cut to (None: built before it was recorded)


FilterT = TypeVar("FilterT")

Query = SparseVector | list[float]  # BM25 terms, or a dense embedding


@dataclass(frozen=True)
class IndexedChunk:
    chunk: Chunk
    sparse: SparseVector
    dense: list[float] | None = None


@dataclass(frozen=True)
class SearchFilter:
    doc_ids: tuple[str, ...] | None = None  # None = every document
    groups: tuple[str, ...] | None = None  # None = no restriction; else chunks open to all or to one of these


class VectorIndex(Protocol):
    spec: IndexSpec

    def replace_document(self, doc_id: str, version: int, items: list[IndexedChunk]) -> None:
        """Afterwards the index holds exactly `items` for `doc_id`: every other chunk of it is gone."""

    def upsert(self, items: list[IndexedChunk]) -> None:
        """Add (or overwrite, by chunk id) these points: one batch of a document version being written.
        Other points, the document's other versions included, stay until `delete_other_versions`."""

    def delete_other_versions(self, doc_id: str, version: int) -> None:
        """Remove the points of `doc_id` whose version is not `version` (once that one serves)."""

    def delete_version(self, doc_id: str, version: int) -> None:
        """Remove the points of one version of `doc_id` (one that failed midway)."""

    def delete_document(self, doc_id: str) -> None: ...

    def set_groups(self, doc_id: str, groups: tuple[str, ...]) -> None:
        """Every chunk of `doc_id` is visible to `groups` from now on (empty: everyone)."""

    def search_ids(self, query: Query, limit: int, flt: SearchFilter | None = None) -> list[tuple[str, float]]:
        """The point ids nearest one query vector, best first, with raw scores: BM25 for a SparseVector,
        cosine for a dense vector ([] when the index holds no dense vectors). Fusing the two is retrieval's job;
        ids first and chunks only for the winners, since reading a chunk costs more than finding it."""

    def fetch(self, point_ids: list[str]) -> dict[str, Chunk]:
        """The chunks of these points, by point id (a point deleted meanwhile is missing)."""

    def count(self) -> int: ...

    @property
    def unoptimized(self) -> int:
        """Points written since the index was last optimized (0 when the engine optimizes by itself)."""

    def document_versions(self) -> dict[str, set[int]]:
        """The versions of each document the index holds, to reconcile it with the catalog."""

    def close(self) -> None: ...


IndexT = TypeVar("IndexT", bound=VectorIndex)


class IndexStore(Protocol[IndexT]):
    """Generations of an index, so a rebuild is swapped in atomically. Each backend's store takes and
    gives its own index type (EdgeIndexStore: EdgeIndex), so no store needs to check what it is given."""

    def open_current(self) -> IndexT | None: ...

    def create(self, spec: IndexSpec) -> IndexT:
        """A new, empty generation that does not serve until promoted."""

    def promote(self, index: IndexT) -> None:
        """Make `index` the serving generation and drop the previous one."""

    def discard(self, index: IndexT) -> None: ...

    def optimize(self, index: IndexT) -> IndexT:
        """Build the search structures of a generation that is not serving yet; returns it ready to use."""

    def compact(self, index: IndexT) -> IndexT | None:
        """An optimized copy of the serving `index`, to promote in its place; None when the engine
        optimizes by itself. Nothing may write to `index` until the copy is promoted or discarded."""

    def describe(self) -> dict[str, Any]: ...


def point_id(chunk_id: str) -> str:
    return str(uuid.uuid5(_CHUNK_IDS, chunk_id))


def chunk_to_payload(chunk: Chunk) -> dict[str, Any]:
    # a shallow copy: dataclasses.asdict deep-copies every field, a third of the time it takes to index a chunk
    payload = {name: getattr(chunk, name) for name in _CHUNK_FIELDS}
    payload["groups"] = list(chunk.groups)
    payload["page_starts"] = [list(pair) for pair in chunk.page_starts]
    payload["headings"] = list(chunk.headings)
    payload["section_starts"] = [list(pair) for pair in chunk.section_starts]
    payload["tables"] = [
        {"start": t.start, "end": t.end, "rows": [list(row) for row in t.rows], "header": t.header}
        for t in chunk.tables
    ]
    return payload


_CHUNK_FIELDS = tuple(f.name for f in fields(Chunk))


def chunk_from_payload(payload: dict[str, Any]) -> Chunk:
    values = {name: payload[name] for name in _CHUNK_FIELDS if name in payload}
    values["groups"] = tuple(values.get("groups") or ())
    values["page_starts"] = tuple((int(start), int(page)) for start, page in values.get("page_starts") or ())
    values["headings"] = tuple(values.get("headings") or ())
    values["section_starts"] = tuple((int(start), str(heading)) for start, heading in values.get("section_starts") or ())
    values["tables"] = tuple(  # absent from payloads written before chunks knew their tables
        TableSpan(int(t["start"]), int(t["end"]), tuple(tuple(row) for row in t["rows"]), bool(t["header"]))
        for t in values.get("tables") or ()
    )
    return Chunk(**values)


def point_vectors(item: IndexedChunk, spec: IndexSpec, sparse_type: Callable[..., Any]) -> dict[str, Any]:
    vectors: dict[str, Any] = {}
    if item.sparse.indices:  # a stop-words-only chunk has no terms: it can only be found by meaning
        vectors[SPARSE] = sparse_type(indices=item.sparse.indices, values=item.sparse.values)
    if spec.dense_dim:
        if item.dense is None or len(item.dense) != spec.dense_dim:
            raise ValueError(f"chunk {item.chunk.chunk_id} needs a {spec.dense_dim}-dimensional dense vector")
        vectors[DENSE] = item.dense
    return vectors


def query_vector_name(spec: IndexSpec, query: Query, flt: SearchFilter | None) -> str | None:
    """The named vector a query searches, or None when nothing can match (no terms, no dense vectors, no documents)."""
    if flt is not None and flt.doc_ids == ():
        return None
    if isinstance(query, SparseVector):
        return SPARSE if query.indices else None
    return DENSE if spec.dense_dim else None


def with_chunks(index: VectorIndex, ranked: list[tuple[str, float]]) -> list[tuple[Chunk, float]]:
    """(point id, score) pairs turned into (chunk, score) in the same order; points gone meanwhile are left out."""
    chunks = index.fetch([pid for pid, _ in ranked])
    return [(chunks[pid], score) for pid, score in ranked if pid in chunks]


@dataclass(frozen=True)
class FilterVocabulary(Generic[FilterT]):
    """How one backend spells the parts of a SearchFilter (qdrant-edge and qdrant-client name the same
    conditions differently); `search_filter` assembles them the same way for both."""

    any_of: Callable[[str, list[str]], Any]  # key matches one of the values
    is_empty: Callable[[str], Any]  # key has no value (an empty list)
    every: Callable[[list[Any]], FilterT]  # all conditions hold (must)
    either: Callable[[list[Any]], Any]  # at least one holds (should)


def search_filter(flt: SearchFilter | None, say: FilterVocabulary[FilterT]) -> FilterT | None:
    """The backend filter for `flt`: its documents, and chunks open to everyone or to one of its groups."""
    if flt is None:
        return None
    must: list[Any] = []
    if flt.doc_ids is not None:
        must.append(say.any_of("doc_id", list(flt.doc_ids)))
    if flt.groups is not None:
        open_to: list[Any] = [say.is_empty("groups")]
        if flt.groups:
            open_to.append(say.any_of("groups", list(flt.groups)))
        must.append(say.either(open_to))
    return say.every(must) if must else None


def scroll_payloads(page: Callable[[Any], tuple[list[Any], Any]]) -> Iterator[dict[str, Any]]:
    """Every record's payload, page after page: `page(offset)` returns (records, next offset or None)."""
    offset = None
    while True:
        records, offset = page(offset)
        yield from (r.payload or {} for r in records)
        if offset is None:
            return


def versions_by_document(payloads: Iterable[dict[str, Any]]) -> dict[str, set[int]]:
    versions: dict[str, set[int]] = {}
    for payload in payloads:
        versions.setdefault(payload["doc_id"], set()).add(int(payload["version"]))
    return versions
