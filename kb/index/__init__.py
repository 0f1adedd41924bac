"""The Qdrant index: an embedded shard (qdrant-edge) by default, a Qdrant server when one is configured.

`base` holds what both share (records, the VectorIndex and IndexStore protocols, payloads, filters),
`edge` the embedded engine, `server` the server backend (imported only when configured: qdrant-client
takes seconds to import), `optimizer` the child process that optimizes an embedded generation.
"""

from __future__ import annotations

from typing import Any

from kb.config import Settings
from kb.errors import IndexLocked, IndexUnavailable
from kb.index.base import (
    DENSE,
    SPARSE,
    IndexedChunk,
    IndexSpec,
    IndexStore,
    Query,
    SearchFilter,
    VectorIndex,
    chunk_from_payload,
    chunk_to_payload,
    point_id,
    with_chunks,
)
from kb.index.edge import EdgeIndex, EdgeIndexStore

__all__ = [
    "DENSE", "SPARSE", "EdgeIndex", "EdgeIndexStore", "IndexLocked", "IndexSpec", "IndexStore",
    "IndexUnavailable", "IndexedChunk", "Query", "SearchFilter", "VectorIndex", "chunk_from_payload",
    "chunk_to_payload", "open_index_store", "point_id", "with_chunks",
]


def open_index_store(settings: Settings) -> IndexStore[Any]:
    """The server named by KB_QDRANT_URL, else the embedded engine under the data directory."""
    if settings.qdrant_url:
        from kb.index.server import connect  # qdrant-client is slow to import: only when needed

        return connect(settings)
    return EdgeIndexStore(settings.data_dir / "index")
