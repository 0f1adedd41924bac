"""One document version into the index: elements -> chunks -> vectors -> points, a batch at a time.

Ingesting used to hold a whole file's elements, text, chunks, vectors and points at once (a 100 MB text
file took the main process to 3.1 GB). Here the elements are read as a stream (a `ParseStream` from the
sandbox, or any iterable), cut by `iter_chunks`, and every `WRITE_BATCH` chunks are encoded and upserted
before the next batch is read, so memory stays bounded by one batch whatever the file's size.

The points of the version land in the index as they come, next to the version being served; they serve
only once the catalog commits the version, and the caller then removes the older versions
(`VectorIndex.delete_other_versions`). If anything fails midway, the points written so far are removed
again (`VectorIndex.delete_version`) before the error goes on to the caller.
"""

from __future__ import annotations

import bisect
import ctypes
import ctypes.util
import functools
import logging
import pickle
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING

from kb.chunking import iter_chunks
from kb.errors import IndexWriteFailed
from kb.records import Chunk, Element, ParseError

if TYPE_CHECKING:  # kb.index imports the engine; the parsing helper imports this module for release_memory
    from kb.index import IndexedChunk, VectorIndex
    from kb.serving import ServingIndex

log = logging.getLogger(__name__)

WRITE_BATCH = 256  # chunks encoded and written together: what a dense model needs to be fast, and no more

Encode = Callable[[list[Chunk]], "list[IndexedChunk]"]


@dataclass(frozen=True)
class Written:
    """What a version put into the index."""

    chunks: int
    batches: int
    last_page: int | None  # the highest page a chunk reaches (the file's page count comes with FileInfo)


def write_version(
    elements: Iterable[Element],
    *,
    index: VectorIndex,
    encode: Encode,
    doc_id: str,
    version: int,
    source: str,
    title: str | None,
    date: str | None = None,
    target_words: int = 300,
    groups: tuple[str, ...] = (),
    batch_chunks: int = WRITE_BATCH,
    progress: Callable[[int], None] | None = None,
) -> Written:
    """Chunk `elements` (as `chunk_document` would) and write them into `index` as `version` of `doc_id`.

    Raises ParseError("no text found") when there is nothing to index, ParseError from the element
    stream (the parsing helper crashed or stalled midway), IndexWriteFailed when the index refuses a
    batch, and whatever `encode` raises. In every such case nothing of this version is left in the index
    (unless the index cannot even be reached to remove it: then it is logged, and the catalog's
    recovery removes it later). `progress(n)` is told the chunks written so far after each batch.
    """
    chunks = iter_chunks(
        elements, title=title, date=date, doc_id=doc_id, version=version, source=source,
        target_words=target_words, groups=groups,
    )
    touched = [False]  # whether the index may hold points of this version

    def encode_and_mark(batch: list[Chunk]) -> list[IndexedChunk]:
        items = encode(batch)
        touched[0] = True
        return items

    try:
        written = write_chunks(chunks, index=index, encode=encode_and_mark, batch_chunks=batch_chunks,
                               progress=progress)
        if not written.chunks:
            raise ParseError("no text found")
    except BaseException:
        if touched[0]:
            _remove(index, doc_id, version)
        raise
    return written


def write_chunks(
    chunks: Iterable[Chunk],
    *,
    index: VectorIndex,
    encode: Encode,
    batch_chunks: int = WRITE_BATCH,
    progress: Callable[[int], None] | None = None,
) -> Written:
    """Encode and upsert `chunks` a batch at a time: the one write path, for a new version of a document
    in the served index (write_version) and for a whole new generation (GenerationBuilder).

    Raises IndexWriteFailed when the index refuses a batch and whatever `encode` raises; cleaning up
    is the caller's. `progress(n)` is told the chunks written so far after each batch."""
    written = batches = 0
    last_page: int | None = None
    for batch in _batched(iter(chunks), batch_chunks):
        items = encode(batch)
        try:
            index.upsert(items)
        except Exception as exc:
            raise IndexWriteFailed(str(exc)) from exc
        written += len(batch)
        batches += 1
        for chunk in batch:
            if chunk.page_end is not None and (last_page is None or chunk.page_end > last_page):
                last_page = chunk.page_end
        del batch, items  # before the next batch is read
        if progress:
            progress(written)
    return Written(chunks=written, batches=batches, last_page=last_page)


class GenerationBuilder:
    """Documents gathered for a new index generation (a re-index, or text records), then written at once.

    BM25 normalises by the corpus's mean chunk length, known only once every document is chunked; the
    chunks wait in a temporary spill file meanwhile (in the data directory, gone when closed or on a
    crash), so memory holds one document at a time rather than the whole corpus."""

    def __init__(self, serving: ServingIndex, spill_dir: Path):
        self._serving = serving
        self._spill = tempfile.TemporaryFile(dir=spill_dir, prefix="kb-generation-")
        self._token_total = 0
        self._ends: list[int] = []  # the running chunk count after each document

    @property
    def documents(self) -> int:
        return len(self._ends)

    @property
    def chunks(self) -> int:
        return self._ends[-1] if self._ends else 0

    def add(self, chunks: list[Chunk]) -> None:
        """One document's chunks (all of one version), in the order they will be written."""
        counter = self._serving.sparse
        self._token_total += sum(counter.token_count(c.indexed_text) for c in chunks)
        pickle.dump(chunks, self._spill, protocol=pickle.HIGHEST_PROTOCOL)
        self._ends.append(self.chunks + len(chunks))

    def build(self, indexed: Callable[[int], None] | None = None) -> VectorIndex:
        """The new generation, complete and optimised but not yet served (ServingIndex.swap serves it);
        `indexed(n)` is told each time n more documents are written. Nothing is left behind on failure."""
        serving = self._serving
        spec = serving.spec_for(self._token_total / self.chunks if self.chunks else None)
        index = serving.create(spec)
        reported = 0

        def written(count: int) -> None:
            nonlocal reported
            done = bisect.bisect_right(self._ends, count)
            if indexed and done > reported:
                indexed(done - reported)
            reported = done

        try:
            write_chunks(self._read_back(), index=index, encode=lambda batch: serving.encode(batch, into=spec),
                         progress=written)
        except BaseException:
            serving.discard(index)
            raise
        finally:
            self._spill.close()
        return serving.finish(index)

    def _read_back(self) -> Iterator[Chunk]:
        self._spill.seek(0)
        for _ in self._ends:
            yield from pickle.load(self._spill)

    def close(self) -> None:
        self._spill.close()


def _batched(chunks: Iterator[Chunk], size: int) -> Iterator[list[Chunk]]:
    while batch := list(islice(chunks, size)):
        yield batch


def _remove(index: VectorIndex, doc_id: str, version: int) -> None:
    try:
        index.delete_version(doc_id, version)
    except Exception as exc:  # the original failure matters more; recovery at the next start cleans up
        log.warning("could not remove the partly written version %s of %s: %s", version, doc_id, exc)


def release_memory() -> bool:
    """Hand memory freed by a big job back to the operating system; True when it could ask.

    CPython frees objects into glibc's heap, which keeps the pages for reuse: after a big file the
    process would go on holding its peak. `malloc_trim(0)` returns the free pages (well under a
    millisecond); elsewhere (macOS, musl) there is nothing to call and this does nothing. No
    gc.collect(): the pipeline's objects are freed by reference counting, and a full collection
    costs ~100 ms in the app's process, too much after every small file.
    """
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    trim = getattr(libc, "malloc_trim", None)  # glibc's; musl has none
    if trim is None:
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim
