"""The ingest pipeline: a stream of elements into the index in bounded batches, and nothing left behind on failure."""

from __future__ import annotations

import itertools
import platform
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from kb.chunking import chunk_document
from kb.embedding import Bm25Encoder
from kb.index import EdgeIndexStore, IndexedChunk, IndexSpec, point_id
from kb.parsing import parse_file
from kb.pipeline import IndexWriteFailed, Written, release_memory, write_version
from kb.records import Chunk, Element, ParsedFile, ParseError
from kb.parsing import ParseSandbox

BM25 = Bm25Encoder(avg_len=180)
WORDS = ["leave", "policy", "employee", "manager", "approval", "days", "travel", "budget", "team", "office"]


def encode(chunks: list[Chunk]) -> list[IndexedChunk]:
    return [IndexedChunk(c, v) for c, v in zip(chunks, BM25.encode_documents([c.indexed_text for c in chunks]))]


def document(paragraphs: int, seed: int = 1) -> ParsedFile:
    rng = random.Random(seed)
    elements = []
    for i in range(paragraphs):
        if i % 25 == 0:
            elements.append(Element(f"Section {i // 25}", kind="title", level=(i // 25) % 2, page=i // 10 + 1))
        sentence = " ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 80))).capitalize() + "."
        elements.append(Element(sentence, page=i // 10 + 1))
    return ParsedFile(elements=elements, pages=paragraphs // 10 + 1, title="Handbook")


class FakeIndex:
    """Points by id in a dict; can be told to refuse the n-th upsert. Records every call."""

    def __init__(self, refuse_upsert: int | None = None):
        self.points: dict[str, Chunk] = {}
        self.calls: list[tuple[str, int]] = []  # ("upsert", batch size) / ("delete_version", version)
        self.refuse_upsert = refuse_upsert

    def upsert(self, items: list[IndexedChunk]) -> None:
        self.calls.append(("upsert", len(items)))
        if self.refuse_upsert is not None and sum(c == "upsert" for c, _ in self.calls) == self.refuse_upsert:
            self.points[point_id(items[0].chunk.chunk_id)] = items[0].chunk  # half of it went in
            raise RuntimeError("no space left on the disk holding the data directory")
        self.points.update((point_id(i.chunk.chunk_id), i.chunk) for i in items)

    def delete_version(self, doc_id: str, version: int) -> None:
        self.calls.append(("delete_version", version))
        self.points = {k: c for k, c in self.points.items() if (c.doc_id, c.version) != (doc_id, version)}

    def versions(self) -> set[tuple[str, int]]:
        return {(c.doc_id, c.version) for c in self.points.values()}


def write(elements, index, **kwargs) -> Written:
    options = dict(doc_id="d", version=2, source="handbook.txt", title="Handbook", target_words=120)
    return write_version(elements, index=index, encode=encode, **{**options, **kwargs})


def test_writes_the_chunks_chunk_document_makes_in_batches(tmp_path: Path):
    parsed = document(400)
    expected = chunk_document(parsed, doc_id="d", version=2, source="handbook.txt", target_words=120)
    store = EdgeIndexStore(tmp_path / "index")
    index = store.create(IndexSpec(dense_model=None, dense_dim=None, bm25_avg_len=180))
    try:
        told: list[int] = []
        written = write(iter(parsed.elements), index, batch_chunks=16, progress=told.append)
        assert written == Written(chunks=len(expected), batches=-(-len(expected) // 16), last_page=40)
        assert told == [min(16 * n, len(expected)) for n in range(1, written.batches + 1)]
        stored = index.fetch([point_id(c.chunk_id) for c in expected])
        assert [stored[point_id(c.chunk_id)] for c in expected] == expected
        assert index.count() == len(expected) and index.unoptimized == len(expected)
    finally:
        index.close()


def test_a_new_version_is_written_beside_the_served_one(tmp_path: Path):
    store = EdgeIndexStore(tmp_path / "index")
    index = store.create(IndexSpec(dense_model=None, dense_dim=None, bm25_avg_len=180))
    try:
        old = write(iter(document(50, seed=2).elements), index, version=1)
        new = write(iter(document(80, seed=3).elements), index, version=2)
        assert index.document_versions() == {"d": {1, 2}}
        assert index.count() == old.chunks + new.chunks
        index.delete_other_versions("d", 2)  # what the caller does once the catalog serves version 2
        assert index.document_versions() == {"d": {2}} and index.count() == new.chunks
    finally:
        index.close()


def test_it_writes_before_it_has_read_the_whole_stream():
    """Memory stays bounded: each batch is written when it is full, with only about a chunk read ahead."""
    pulled = 0
    pulled_at_upsert: list[int] = []

    def elements() -> Iterator[Element]:
        nonlocal pulled
        for element in document(20_000).elements:
            pulled += 1
            yield element

    class Watching(FakeIndex):
        def upsert(self, items):
            pulled_at_upsert.append(pulled)
            super().upsert(items)

    index = Watching()
    written = write(elements(), index, batch_chunks=32)
    assert written.chunks == len(index.points) and written.batches == len(pulled_at_upsert)
    # 32 chunks of ~120 words are ~80 paragraphs of ~50 words; one chunk's lookahead adds a few more
    assert pulled_at_upsert[0] < 150
    assert all(b - a < 150 for a, b in itertools.pairwise(pulled_at_upsert))


def test_an_index_that_refuses_a_batch_leaves_nothing_of_the_version():
    index = FakeIndex(refuse_upsert=3)
    index.points["old"] = Chunk("d:1:0", "d", 1, 0, "handbook.txt", "served text")
    with pytest.raises(IndexWriteFailed, match="no space left") as failure:
        write(iter(document(300).elements), index, batch_chunks=8)
    assert isinstance(failure.value.__cause__, RuntimeError)
    assert index.versions() == {("d", 1)}  # the served version is untouched, the new one is gone
    assert index.calls[-1] == ("delete_version", 2)


def test_a_failure_to_encode_or_read_midway_leaves_nothing_of_the_version():
    def failing_encode(chunks: list[Chunk]) -> list[IndexedChunk]:
        if chunks[0].seq >= 16:
            raise RuntimeError("the embedding endpoint is down")
        return encode(chunks)

    index = FakeIndex()
    with pytest.raises(RuntimeError, match="endpoint is down"):
        write_version(
            iter(document(300).elements), index=index, encode=failing_encode, doc_id="d", version=2,
            source="handbook.txt", title=None, target_words=120, batch_chunks=8,
        )
    assert index.versions() == set()

    def crashing_reader() -> Iterator[Element]:
        yield from document(300).elements[:200]
        raise ParseError("the reader crashed on this file")

    with pytest.raises(ParseError, match="crashed"):
        write(crashing_reader(), index, batch_chunks=8)
    assert index.versions() == set() and index.calls[-1] == ("delete_version", 2)


def test_nothing_to_index_is_no_text_found_and_touches_nothing():
    index = FakeIndex()
    with pytest.raises(ParseError, match="no text found"):
        write(iter([]), index)
    assert index.calls == []


def test_a_stream_from_the_parsing_helper_gives_what_the_file_parsed_in_process_gives(tmp_path: Path):
    path = tmp_path / "handbook.md"
    rng = random.Random(5)
    sections = [
        f"# Part {i}\n\n" + "\n\n".join(" ".join(rng.choice(WORDS) for _ in range(40)) + "." for _ in range(12))
        for i in range(15)
    ]
    path.write_text("\n\n".join(sections))
    expected = chunk_document(parse_file(path, "handbook.md"), doc_id="d", version=2, source="handbook.md",
                              target_words=120)
    sandbox = ParseSandbox(timeout_s=60)
    sandbox.batch_elements = 9
    index = FakeIndex()
    try:
        with sandbox.parse_stream(path, "handbook.md") as stream:
            written = write(stream, index, source="handbook.md", title=stream.info.title)
    finally:
        sandbox.close()
    assert written.chunks == len(expected)
    assert sorted(index.points.values(), key=lambda c: c.seq) == expected


def test_release_memory_asks_glibc_where_there_is_one():
    released = release_memory()
    assert isinstance(released, bool)
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert released
