"""The embedded index: qdrant-edge, one shard per generation directory.

A directory per generation (root/gen-000001/{spec.json,shard/}) and a CURRENT pointer file naming the
serving one. Building the search structures runs in a child process (kb/index/optimizer.py).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import qdrant_edge as edge

from kb.errors import IndexLocked, IndexUnavailable
from kb.index import base
from kb.index.base import DENSE, SCROLL_PAGE, SPARSE, FilterVocabulary, IndexedChunk, IndexSpec, Query, SearchFilter
from kb.records import Chunk, SparseVector
from kb.storage import ensure_free_space, no_space

log = logging.getLogger(__name__)

_GENERATION = re.compile(r"^gen-(\d{6})$")
UNOPTIMIZED_FILE = "unoptimized"  # in a generation directory: points written since it was last optimized


def _name(number: int) -> str:
    return f"gen-{number:06d}"


def _number(name: str) -> int:
    return int(name.removeprefix("gen-"))


def _edge_match(key: str, value: str | int) -> edge.FieldCondition:
    return edge.FieldCondition(key, match=edge.MatchValue(value))


EDGE_FILTERS: FilterVocabulary[edge.Filter] = FilterVocabulary(
    any_of=lambda key, values: edge.FieldCondition(key, match=edge.MatchAny(values)),
    is_empty=edge.IsEmptyCondition,
    every=lambda conditions: edge.Filter(must=conditions),
    either=lambda conditions: edge.Filter(should=conditions),
)


class EdgeIndex:
    """One generation: an EdgeShard in `path`/shard. Safe to query from many threads while one writes."""

    def __init__(self, shard: edge.EdgeShard, spec: IndexSpec, path: Path, on_close: Callable[[EdgeIndex], None]):
        self.spec = spec
        self.path = path
        self._shard = shard
        self._on_close = on_close
        self._closed = False
        try:
            self._unoptimized = int((path / UNOPTIMIZED_FILE).read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            self._unoptimized = 0

    @property
    def generation(self) -> str:
        return self.path.name

    def replace_document(self, doc_id: str, version: int, items: list[IndexedChunk]) -> None:
        self.upsert(items)
        # new chunks first, then the rest of the document, so it never vanishes from search midway
        keep = edge.HasIdCondition({base.point_id(i.chunk.chunk_id) for i in items})
        stale = edge.Filter(must=[_edge_match("doc_id", doc_id)], must_not=[keep])
        self._shard.update(edge.UpdateOperation.delete_points_by_filter(stale))

    def upsert(self, items: list[IndexedChunk]) -> None:
        # a full disk under the shard's memory-mapped files kills the process (SIGBUS): refuse in time
        ensure_free_space(self.path, len(items) * _point_bytes(self.spec))
        points = [
            edge.Point(base.point_id(i.chunk.chunk_id), base.point_vectors(i, self.spec, edge.SparseVector),
                       base.chunk_to_payload(i.chunk))
            for i in items
        ]
        if points:
            self._shard.update(edge.UpdateOperation.upsert_points(points))
        self._count_unoptimized(len(points))

    def delete_other_versions(self, doc_id: str, version: int) -> None:
        others = edge.Filter(must=[_edge_match("doc_id", doc_id)], must_not=[_edge_match("version", version)])
        self._shard.update(edge.UpdateOperation.delete_points_by_filter(others))

    def delete_version(self, doc_id: str, version: int) -> None:
        this = edge.Filter(must=[_edge_match("doc_id", doc_id), _edge_match("version", version)])
        self._shard.update(edge.UpdateOperation.delete_points_by_filter(this))

    def flush(self) -> None:
        """Write what the shard holds in memory to its files (before they are copied)."""
        self._shard.flush()

    def mark_optimized(self) -> None:
        """The optimizers have just run over this generation: nothing is unoptimized any more."""
        self._count_unoptimized(None)

    def _count_unoptimized(self, added: int | None) -> None:
        """Add `added` points to the count since the last optimize (None: optimized now), kept on disk."""
        self._unoptimized = 0 if added is None else self._unoptimized + added
        tmp = self.path / (UNOPTIMIZED_FILE + ".tmp")
        tmp.write_text(str(self._unoptimized), encoding="utf-8")
        os.replace(tmp, self.path / UNOPTIMIZED_FILE)

    @property
    def unoptimized(self) -> int:
        return self._unoptimized

    def delete_document(self, doc_id: str) -> None:
        document = edge.Filter(must=[_edge_match("doc_id", doc_id)])
        self._shard.update(edge.UpdateOperation.delete_points_by_filter(document))

    def set_groups(self, doc_id: str, groups: tuple[str, ...]) -> None:
        document = edge.Filter(must=[edge.FieldCondition("doc_id", match=edge.MatchValue(doc_id))])
        self._shard.update(edge.UpdateOperation.set_payload_by_filter(document, {"groups": list(groups)}))

    def search_ids(self, query: Query, limit: int, flt: SearchFilter | None = None) -> list[tuple[str, float]]:
        name = base.query_vector_name(self.spec, query, flt)
        if name is None:
            return []
        vector = edge.SparseVector(query.indices, query.values) if isinstance(query, SparseVector) else query
        request = edge.QueryRequest(
            limit=limit, query=edge.Query.Nearest(vector, using=name), filter=base.search_filter(flt, EDGE_FILTERS),
            params=_SEARCH,
        )
        return [(str(p.id), p.score) for p in self._shard.query(request)]

    def fetch(self, point_ids: list[str]) -> dict[str, Chunk]:
        if not point_ids:
            return {}
        records = self._shard.retrieve(list[int | uuid.UUID | str](point_ids), True, False)
        return {str(r.id): base.chunk_from_payload(r.payload or {}) for r in records}

    def count(self) -> int:
        return self._shard.count(edge.CountRequest(exact=True))

    def document_versions(self) -> dict[str, set[int]]:
        return base.versions_by_document(self._payloads(["doc_id", "version"]))

    def _payloads(self, keys: list[str]) -> Iterator[dict[str, Any]]:
        def page(offset: Any) -> tuple[list[Any], Any]:
            return self._shard.scroll(edge.ScrollRequest(
                offset=offset, limit=SCROLL_PAGE, with_payload=edge.PayloadSelector.Include(keys), with_vector=False
            ))

        return base.scroll_payloads(page)

    def close(self) -> None:
        """Flush and release the shard. A flush that fails (the disk filled up under another process's
        writes) still releases it, then raises one clear error; what was written is in the shard's
        write-ahead log and comes back when it is opened again with room on the disk."""
        if self._closed:
            return
        self._closed = True
        failure: Exception | None = None
        try:
            self._shard.flush()
        except Exception as exc:  # qdrant-edge raises plain Exception
            failure = exc
        finally:
            self._shard.close()
            self._on_close(self)
        if failure is not None:
            if "No space left" in str(failure) or "os error 28" in str(failure):
                raise no_space(self.path.parent.parent, ": the index could not save its last changes; "
                               "they are kept in its log and come back once there is room") from failure
            raise IndexUnavailable(f"the index at {self.path} could not be saved: {failure}") from failure


def _point_bytes(spec: IndexSpec) -> int:
    """Disk one point may take in the shard, write-ahead log included: about 5 KB a chunk was measured
    with BM25 alone; a dense vector is stored twice (log and storage) as 4-byte floats."""
    return 8 * 1024 + 8 * (spec.dense_dim or 0)


# Search structures, built by qdrant's optimizers (EdgeIndexStore.optimize): HNSW graphs with a smaller
# ef_construct than the default 100 (4x faster to build, measured in docs/benchmarks.md) searched over
# int8 copies of the dense vectors held in RAM, with the float vectors on disk for rescoring. The sparse
# index, payloads and id tracker are memory-mapped and paged in on use.
HNSW_EF = 256
_HNSW = edge.HnswIndexConfig(m=16, ef_construct=64, full_scan_threshold=10_000)
_INT8 = edge.ScalarQuantizationConfig(edge.ScalarType.Int8, memory=edge.Memory.Pinned)
# Searching: a wider beam than ef_construct, and twice the candidates rescored with the float vectors.
_SEARCH = edge.SearchParams(hnsw_ef=HNSW_EF, quantization=edge.QuantizationSearchParams(rescore=True, oversampling=2.0))


def _edge_config(spec: IndexSpec) -> edge.EdgeConfig:
    dense = (
        {DENSE: edge.EdgeVectorParams(size=spec.dense_dim, distance=edge.Distance.Cosine, quantization_config=_INT8)}
        if spec.dense_dim
        else None
    )
    return edge.EdgeConfig(
        vectors=dense,
        sparse_vectors={SPARSE: edge.EdgeSparseVectorParams(modifier=edge.Modifier.Idf, memory=edge.Memory.Cold)},
        hnsw_config=_HNSW,
        payload_memory=edge.Memory.Cold,
        id_tracker_memory=edge.Memory.Cold,
    )


def _load_shard(path: Path) -> edge.EdgeShard:
    try:
        return edge.EdgeShard.load(str(path))
    except Exception as exc:  # qdrant-edge raises plain Exception
        if "WouldBlock" in str(exc):
            raise IndexLocked(f"the index at {path.parent} is open in another process") from exc
        raise IndexUnavailable(f"the index at {path.parent} cannot be opened: {exc}") from exc


class EdgeIndexStore:
    """Generations under `root`: root/gen-000001/{spec.json,shard/} and a CURRENT file naming the serving one.

    A generation still open somewhere (its shard is locked) is never deleted: it is dropped when it is
    closed, or by a later promote or open.
    """

    def __init__(self, root: Path):
        self.root = root
        self._open: set[str] = set()  # generations this process holds

    def open_current(self) -> EdgeIndex | None:
        name = self._current()
        if name is None:
            return None
        path = self.root / name
        if name in self._open:
            raise IndexLocked(f"the index at {path} is already open in this process")
        if not (path / "spec.json").is_file():
            raise IndexUnavailable(f"{self.root / 'CURRENT'} names {name}, which is missing")
        ensure_free_space(self.root)  # loading a shard fills in parts of its sparse files: SIGBUS on a full disk
        spec = IndexSpec(**json.loads((path / "spec.json").read_text(encoding="utf-8")))
        index = EdgeIndex(_load_shard(path / "shard"), spec, path, self._closed)
        self._open.add(name)
        self._sweep()
        return index

    def create(self, spec: IndexSpec) -> EdgeIndex:
        self.root.mkdir(parents=True, exist_ok=True)
        ensure_free_space(self.root)
        path = self._new_generation()
        (path / "spec.json").write_text(json.dumps(asdict(spec)), encoding="utf-8")
        shard = edge.EdgeShard.create(str(path / "shard"), _edge_config(spec))
        for key, schema in (
            ("doc_id", edge.PayloadSchemaType.Keyword),
            ("groups", edge.PayloadSchemaType.Keyword),
            ("version", edge.PayloadSchemaType.Integer),
        ):
            shard.update(edge.UpdateOperation.create_field_index(key, schema))
        self._open.add(path.name)
        return EdgeIndex(shard, spec, path, self._closed)

    def promote(self, index: EdgeIndex) -> None:
        pointer = self.root / "CURRENT"
        tmp = pointer.with_suffix(".tmp")
        tmp.write_text(index.generation + "\n", encoding="utf-8")
        os.replace(tmp, pointer)
        self._sweep()

    def discard(self, index: EdgeIndex) -> None:
        index.close()
        shutil.rmtree(index.path, ignore_errors=True)

    def optimize(self, index: EdgeIndex) -> EdgeIndex:
        """Run qdrant's optimizers over a generation in a child process, then open it again.

        Not in this process: the optimizer holds Python's lock for its whole run (minutes for a large
        dense index), which would freeze every other thread, the app's chat included. If the child
        fails, the generation is opened as it was: unoptimized, slower, but complete.
        """
        index.close()
        return self._optimized(index.path, index.spec)

    def compact(self, index: EdgeIndex) -> EdgeIndex:
        """Copy the serving generation's files into a new generation and optimize that one."""
        index.flush()
        size = sum(f.stat().st_blocks * 512 for f in index.path.rglob("*") if f.is_file())
        ensure_free_space(self.root, size)
        copy = self._new_generation()
        try:
            shutil.copytree(index.path / "shard", copy / "shard")
            for name in ("spec.json", UNOPTIMIZED_FILE):
                if (index.path / name).is_file():
                    shutil.copy2(index.path / name, copy / name)
            return self._optimized(copy, index.spec)
        except BaseException:
            shutil.rmtree(copy, ignore_errors=True)
            raise

    def _optimized(self, path: Path, spec: IndexSpec) -> EdgeIndex:
        """The closed generation at `path`, optimized by a child process, opened here."""
        done = subprocess.run(
            [sys.executable, "-m", "kb.index.optimizer", str(path / "shard")],
            capture_output=True, text=True, check=False,
        )
        if done.returncode != 0:
            log.warning("optimizing %s failed (exit %s): %s", path, done.returncode, done.stderr[-500:])
        index = EdgeIndex(_load_shard(path / "shard"), spec, path, self._closed)
        self._open.add(path.name)
        if done.returncode == 0:
            index.mark_optimized()
        return index

    def describe(self) -> dict[str, Any]:
        name = self._current()
        # allocated blocks, not file sizes: the shard preallocates 32 MB pages it fills sparsely
        size = sum(f.stat().st_blocks * 512 for f in (self.root / name).rglob("*") if f.is_file()) if name else 0
        return {"backend": "qdrant-edge", "location": str(self.root), "generation": name, "size_bytes": size}

    def _new_generation(self) -> Path:
        number = max(map(_number, self._generations()), default=0) + 1
        while True:  # another process may take a number at the same moment
            path = self.root / _name(number)
            try:
                path.mkdir()
                return path
            except FileExistsError:
                number += 1

    def _current(self) -> str | None:
        try:
            name = (self.root / "CURRENT").read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        return name if _GENERATION.match(name) else None

    def _generations(self) -> list[str]:
        return [p.name for p in self.root.iterdir() if _GENERATION.match(p.name)] if self.root.is_dir() else []

    def _is_stale(self, name: str) -> bool:
        """Older than the serving generation: replaced, or a rebuild that never finished."""
        current = self._current()
        return current is not None and _number(name) < _number(current)

    def _sweep(self) -> None:
        for name in self._generations():
            if self._is_stale(name) and name not in self._open and not self._locked(self.root / name):
                shutil.rmtree(self.root / name, ignore_errors=True)

    @staticmethod
    def _locked(path: Path) -> bool:
        if not (path / "shard").is_dir():
            return False
        try:
            _load_shard(path / "shard").close()
        except IndexLocked:
            return True
        except IndexUnavailable:
            return False  # broken leftovers go too
        return False

    def _closed(self, index: EdgeIndex) -> None:
        self._open.discard(index.generation)
        if self._is_stale(index.generation):
            shutil.rmtree(index.path, ignore_errors=True)
