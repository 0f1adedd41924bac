"""The index behaves the same on both backends: the embedded shard and a Qdrant server (local mode)."""

from __future__ import annotations

import json
import socket
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from qdrant_client import QdrantClient
from tiny_model import MODEL_NAME, build_tiny_model

from kb.config import Settings
from kb.embedding import Bm25Encoder, FastEmbedEmbedder
from kb.index import (
    EdgeIndexStore,
    IndexedChunk,
    IndexLocked,
    IndexSpec,
    IndexUnavailable,
    SearchFilter,
    chunk_from_payload,
    chunk_to_payload,
    open_index_store,
    point_id,
)
from kb.index import with_chunks
from kb.index.server import ServerIndexStore
from kb.records import Chunk, TableSpan

pytestmark = pytest.mark.filterwarnings("ignore:Payload indexes have no effect:UserWarning")

BM25 = Bm25Encoder(avg_len=8)
KEYWORD = IndexSpec(dense_model=None, dense_dim=None, bm25_avg_len=8)
HAND_MADE = IndexSpec(dense_model="test:hand-made", dense_dim=3, bm25_avg_len=8)


def chunk(doc_id: str, version: int, seq: int, text: str, groups: tuple[str, ...] = ()) -> Chunk:
    return Chunk(
        chunk_id=f"{doc_id}:{version}:{seq}",
        doc_id=doc_id,
        version=version,
        seq=seq,
        source=f"{doc_id}.md",
        text=text,
        groups=groups,
    )


def item(c: Chunk, dense: list[float] | None = None) -> IndexedChunk:
    return IndexedChunk(c, BM25.encode_documents([c.indexed_text])[0], dense)


def search(index, query: str, limit: int = 10, flt: SearchFilter | None = None, dense: list[float] | None = None):
    """By keywords, or by meaning when a dense query vector is given (the query text is then unused)."""
    return with_chunks(index, index.search_ids(BM25.encode_query(query) if dense is None else dense, limit, flt))


def texts(results) -> list[str]:
    return [c.text for c, _ in results]


@pytest.fixture(params=["edge", "server"])
def store(request, tmp_path):
    if request.param == "edge":
        return EdgeIndexStore(tmp_path / "index")
    return ServerIndexStore(QdrantClient(":memory:"), "kb", url="memory")


@pytest.fixture
def make_index(store):
    """A promoted index with the given spec, closed after the test."""
    opened = []

    def make(spec: IndexSpec = KEYWORD):
        index = store.create(spec)
        store.promote(index)
        opened.append(index)
        return index

    yield make
    for index in opened:
        index.close()


def test_payload_round_trips_every_chunk_field():
    original = Chunk(
        chunk_id="d:2:5",
        doc_id="d",
        version=2,
        seq=5,
        source="hr/leave.pdf",
        text="Annual leave is 25 days.",
        page_start=3,
        page_end=4,
        section="Leave",
        title="Handbook",
        char_start=100,
        char_end=124,
        groups=("hr", "it"),
        section_starts=((12, "Carry-over"),),
    )
    payload = json.loads(json.dumps(chunk_to_payload(original)))  # as it travels to a server
    assert payload["groups"] == ["hr", "it"]
    assert chunk_from_payload(payload) == original


ROWS = (("Region", "Revenue", "Note"), ("North", "1200", ""), ("South", "900", "restated"))
TABLE_CHUNK = Chunk(
    chunk_id="t:1:3", doc_id="t", version=1, seq=3, source="sales.xlsx",
    text="Sales by region.\n\nRegion | Revenue | Note\nNorth | 1200\nSouth | 900 | restated",
    tables=(TableSpan(18, 77, ROWS, True),),
)  # fmt: skip


def test_payload_round_trips_a_chunks_tables_and_old_payloads_have_none():
    chunk_text = TABLE_CHUNK.text
    span = TABLE_CHUNK.tables[0]
    assert chunk_text[span.start : span.end].startswith("Region") and chunk_text[span.end :] == ""
    payload = json.loads(json.dumps(chunk_to_payload(TABLE_CHUNK)))
    assert payload["tables"] == [{"start": 18, "end": 77, "rows": [list(row) for row in ROWS], "header": True}]
    assert chunk_from_payload(payload) == TABLE_CHUNK
    del payload["tables"]  # a payload written before chunks knew their tables
    assert chunk_from_payload(payload).tables == ()


def test_a_chunks_tables_survive_the_index(make_index):
    index = make_index()
    index.replace_document("t", 1, [item(TABLE_CHUNK)])
    assert index.fetch([point_id(TABLE_CHUNK.chunk_id)]) == {point_id(TABLE_CHUNK.chunk_id): TABLE_CHUNK}


def test_point_ids_are_stable_uuids():
    assert point_id("d:1:0") == point_id("d:1:0") != point_id("d:1:1")
    assert uuid.UUID(point_id("d:1:0")).version == 5


def test_replace_document_swaps_versions(make_index):
    index = make_index()
    index.replace_document(
        "a", 1, [item(chunk("a", 1, i, f"old wording {w}")) for i, w in enumerate(["alpha", "beta", "gamma"])]
    )
    index.replace_document(
        "a", 2, [item(chunk("a", 2, 0, "new wording delta")), item(chunk("a", 2, 1, "new wording alpha"))]
    )
    assert index.count() == 2
    assert index.document_versions() == {"a": {2}}
    assert search(index, "beta") == []
    assert {c.version for c, _ in search(index, "wording")} == {2}


def test_replace_document_drops_leftover_chunks_of_the_same_version(make_index):
    index = make_index()
    index.replace_document("a", 1, [item(chunk("a", 1, i, f"text {i}")) for i in range(3)])
    index.replace_document("a", 1, [item(chunk("a", 1, 0, "text 0"))])
    assert index.count() == 1


def test_replace_document_leaves_other_documents_alone(make_index):
    index = make_index()
    index.replace_document("a", 1, [item(chunk("a", 1, 0, "parking rules"))])
    index.replace_document("b", 1, [item(chunk("b", 1, 0, "parking permits"))])
    index.replace_document("a", 2, [item(chunk("a", 2, 0, "parking spaces"))])
    assert index.document_versions() == {"a": {2}, "b": {1}}


def test_delete_document(make_index):
    index = make_index()
    index.replace_document("a", 1, [item(chunk("a", 1, 0, "parking rules"))])
    index.replace_document("b", 1, [item(chunk("b", 1, 0, "parking permits"))])
    index.delete_document("a")
    assert index.document_versions() == {"b": {1}}
    assert texts(search(index, "parking")) == ["parking permits"]


def test_filter_by_documents(make_index):
    index = make_index()
    for doc in "abc":
        index.replace_document(doc, 1, [item(chunk(doc, 1, 0, f"expense policy of {doc}"))])
    assert {c.doc_id for c, _ in search(index, "expense", flt=SearchFilter(doc_ids=("b", "c")))} == {"b", "c"}
    assert search(index, "expense", flt=SearchFilter(doc_ids=())) == []


@pytest.mark.parametrize(
    ("groups", "visible"),
    [(None, {"everyone", "hr only", "it only"}), (("hr",), {"everyone", "hr only"}), ((), {"everyone"})],
)
def test_filter_by_groups(make_index, groups, visible):
    index = make_index()
    index.replace_document(
        "a",
        1,
        [
            item(chunk("a", 1, 0, "salary bands everyone")),
            item(chunk("a", 1, 1, "salary bands hr only", groups=("hr",))),
            item(chunk("a", 1, 2, "salary bands it only", groups=("it", "ops"))),
        ],
    )
    found = texts(search(index, "salary bands", flt=SearchFilter(groups=groups)))
    assert {t.removeprefix("salary bands ") for t in found} == visible


def test_restricted_chunk_never_reaches_results_by_meaning(make_index):
    index = make_index(HAND_MADE)
    index.replace_document(
        "a",
        1,
        [
            item(chunk("a", 1, 0, "board minutes", groups=("board",)), dense=[1.0, 0.0, 0.0]),
            item(chunk("a", 1, 1, "canteen menu"), dense=[0.0, 1.0, 0.0]),
        ],
    )
    results = search(index, "board minutes", dense=[1.0, 0.0, 0.0], flt=SearchFilter(groups=("staff",)))
    assert texts(results) == ["canteen menu"]


def test_keyword_ranking_prefers_rare_terms_and_scores_are_bm25(make_index):
    index = make_index()
    index.replace_document(
        "a",
        1,
        [
            item(chunk("a", 1, 0, "the policy covers travel")),
            item(chunk("a", 1, 1, "the policy covers parking")),
            item(chunk("a", 1, 2, "the policy covers canteen")),
            item(chunk("a", 1, 3, "reimbursement of travel receipts within the policy")),
        ],
    )
    results = search(index, "policy reimbursement")
    assert results[0][0].text.startswith("reimbursement")
    scores = [score for _, score in results]
    assert scores == sorted(scores, reverse=True)
    assert scores[0] > 1.0  # a raw BM25 score, not a fused rank score
    assert texts(search(index, "parking", limit=1)) == ["the policy covers parking"]


def test_dense_search_finds_by_meaning_what_keywords_miss_with_cosine_scores(make_index):
    index = make_index(HAND_MADE)
    index.replace_document(
        "a",
        1,
        [
            item(chunk("a", 1, 0, "annual holiday allowance"), dense=[1.0, 0.0, 0.0]),
            item(chunk("a", 1, 1, "car parking permits"), dense=[0.0, 1.0, 0.0]),
        ],
    )
    assert search(index, "vacation days") == []  # keyword only: no shared term
    results = search(index, "vacation days", dense=[0.8, 0.6, 0.0])
    assert texts(results) == ["annual holiday allowance", "car parking permits"]
    assert [score for _, score in results] == pytest.approx([0.8, 0.6], abs=1e-5)  # raw cosine, not fused


def test_a_dense_query_on_a_keyword_only_index_finds_nothing(make_index):
    index = make_index()
    index.replace_document("a", 1, [item(chunk("a", 1, 0, "annual holiday allowance"))])
    assert index.search_ids([1.0, 0.0, 0.0], 5) == []
    assert texts(search(index, "holiday")) == ["annual holiday allowance"]


def test_a_stop_words_only_chunk_is_stored_and_found_by_meaning(make_index):
    index = make_index(HAND_MADE)
    index.replace_document("a", 1, [item(chunk("a", 1, 0, "to be or not to be"), dense=[0.0, 0.0, 1.0])])
    assert index.count() == 1
    assert search(index, "the", dense=None) == []
    assert texts(search(index, "the", dense=[0.0, 0.0, 1.0])) == ["to be or not to be"]


def test_dense_vectors_must_match_the_spec(make_index):
    index = make_index(HAND_MADE)
    with pytest.raises(ValueError, match="3-dimensional"):
        index.replace_document("a", 1, [item(chunk("a", 1, 0, "text"), dense=[1.0, 0.0])])


def test_hybrid_with_the_tiny_fastembed_model(make_index, tmp_path):
    embedder = FastEmbedEmbedder(MODEL_NAME, tmp_path / "cache", build_tiny_model(tmp_path / "model"))
    index = make_index(IndexSpec(embedder.model_id, embedder.dim, 8))
    chunks = [
        chunk("a", 1, 0, "holiday allowance"),
        chunk("a", 1, 1, "laptop security"),
        chunk("a", 1, 2, "travel booking"),
    ]
    vectors = embedder.embed_documents([c.indexed_text for c in chunks])
    index.replace_document("a", 1, [item(c, v) for c, v in zip(chunks, vectors)])
    results = search(index, "vacation", dense=embedder.embed_query("vacation"))
    assert texts(results)[0] == "holiday allowance"


def test_generations_serve_until_promoted(store):
    assert store.open_current() is None
    first = store.create(KEYWORD)
    store.promote(first)
    first.replace_document("a", 1, [item(chunk("a", 1, 0, "first generation text"))])

    spec = IndexSpec(dense_model=None, dense_dim=None, bm25_avg_len=42.5)
    second = store.create(spec)
    second.replace_document("b", 1, [item(chunk("b", 1, 0, "second generation text"))])
    assert texts(search(first, "generation")) == ["first generation text"]  # the rebuild is not serving yet

    store.promote(second)
    first.close()  # what the service does once the new generation serves
    if isinstance(store, EdgeIndexStore):
        second.close()  # the shard admits one holder: reopen it from disk
        store = EdgeIndexStore(store.root)
    current = store.open_current()
    assert current.spec == spec
    assert texts(search(current, "generation")) == ["second generation text"]
    assert current.document_versions() == {"b": {1}}
    current.close()


def test_discard_drops_a_generation_and_keeps_the_serving_one(store):
    serving = store.create(KEYWORD)
    store.promote(serving)
    serving.replace_document("a", 1, [item(chunk("a", 1, 0, "kept"))])
    failed = store.create(KEYWORD)
    store.discard(failed)
    assert texts(search(serving, "kept")) == ["kept"]
    assert store.describe()["backend"].startswith("qdrant")
    serving.close()


def test_server_keeps_one_collection_per_live_generation():
    client = QdrantClient(":memory:")
    store = ServerIndexStore(client, "kb", url="memory")
    first = store.create(KEYWORD)
    store.promote(first)
    second = store.create(HAND_MADE)
    store.promote(second)
    discarded = store.create(KEYWORD)
    store.discard(discarded)
    assert [c.name for c in client.get_collections().collections] == [second.collection]
    assert store.describe()["collection"] == second.collection
    assert store.open_current().spec == HAND_MADE


def test_edge_generations_are_directories_with_a_pointer(tmp_path):
    root = tmp_path / "index"
    store = EdgeIndexStore(root)
    first = store.create(KEYWORD)
    store.promote(first)
    abandoned = store.create(KEYWORD)  # a rebuild that crashed: never promoted, left behind
    abandoned.close()
    third = store.create(HAND_MADE)
    store.promote(third)
    assert (root / "CURRENT").read_text().strip() == third.generation
    # the crashed rebuild is gone; the old generation stays while this process still serves from it
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == [first.generation, third.generation]
    first.close()
    assert not first.path.exists()
    assert json.loads((third.path / "spec.json").read_text())["dense_dim"] == 3
    assert store.describe()["size_bytes"] > 0
    third.close()


def test_edge_generation_open_elsewhere_is_locked(tmp_path):
    store = EdgeIndexStore(tmp_path / "index")
    index = store.create(KEYWORD)
    store.promote(index)
    with pytest.raises(IndexLocked, match="open in another process"):
        EdgeIndexStore(tmp_path / "index").open_current()
    with pytest.raises(IndexLocked, match="already open in this process"):
        store.open_current()
    index.close()
    reopened = EdgeIndexStore(tmp_path / "index").open_current()
    assert reopened.spec == KEYWORD
    reopened.close()


def _fill(index, documents: int = 30) -> None:
    for d in range(documents):
        doc = f"doc{d}"
        index.replace_document(doc, 1, [item(chunk(doc, 1, 0, f"policy {d} leave travel"), [1.0, d / documents, 0.5])])


def test_edge_optimize_keeps_every_point_and_the_rankings(tmp_path):
    store = EdgeIndexStore(tmp_path / "index")
    index = store.create(HAND_MADE)
    _fill(index)
    assert index.unoptimized == 30
    by_words = [(c.chunk_id, s) for c, s in search(index, "policy 7 leave")]
    by_meaning = [c.chunk_id for c, _ in search(index, "", dense=[1.0, 0.2, 0.5])]
    optimized = store.optimize(index)
    assert optimized.unoptimized == 0
    assert optimized.count() == 30
    assert [(c.chunk_id, s) for c, s in search(optimized, "policy 7 leave")] == by_words
    assert [c.chunk_id for c, _ in search(optimized, "", dense=[1.0, 0.2, 0.5])] == by_meaning
    store.promote(optimized)
    optimized.replace_document("new", 1, [item(chunk("new", 1, 0, "new words"), [0.0, 1.0, 0.0])])
    optimized.close()
    reopened = store.open_current()
    assert reopened.unoptimized == 1  # the count since the last optimize outlives the process
    reopened.close()


def test_edge_optimize_that_fails_leaves_the_generation_whole(tmp_path, monkeypatch, caplog):
    store = EdgeIndexStore(tmp_path / "index")
    index = store.create(KEYWORD)
    _fill(index)
    monkeypatch.setattr(sys, "executable", "/bin/false")  # the optimizer's child process exits with 1
    after = store.optimize(index)
    assert "optimizing" in caplog.text and "failed" in caplog.text
    assert after.count() == 30 and after.unoptimized == 30  # complete, and still due for optimizing
    after.close()


def test_edge_compact_copies_the_serving_generation_into_a_new_one(tmp_path):
    store = EdgeIndexStore(tmp_path / "index")
    serving = store.create(HAND_MADE)
    _fill(serving)
    store.promote(serving)
    copy = store.compact(serving)
    assert copy.generation != serving.generation and copy.unoptimized == 0
    assert copy.document_versions() == serving.document_versions()
    assert search(serving, "policy 3")[0][0].chunk_id == "doc3:1:0"  # the original still serves meanwhile
    store.promote(copy)
    serving.close()
    assert not serving.path.exists()
    assert search(copy, "policy 3")[0][0].chunk_id == "doc3:1:0"
    copy.close()


def test_edge_index_serves_concurrent_readers_and_a_writer(tmp_path):
    index = EdgeIndexStore(tmp_path / "index").create(KEYWORD)
    errors: list[Exception] = []

    def read():
        try:
            for _ in range(50):
                search(index, "shared words", flt=SearchFilter(groups=("hr",)))
        except Exception as exc:  # collected, so the assertion shows it
            errors.append(exc)

    readers = [threading.Thread(target=read) for _ in range(4)]
    for thread in readers:
        thread.start()
    for version in range(1, 30):
        index.replace_document("a", version, [item(chunk("a", version, i, f"shared words {i}")) for i in range(5)])
    for thread in readers:
        thread.join()
    assert errors == []
    assert index.document_versions() == {"a": {29}}
    index.close()


def test_unreachable_server_is_reported_in_one_line():
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    store = ServerIndexStore(QdrantClient(url=url, timeout=2, check_compatibility=False), "kb", url=url)
    with pytest.raises(IndexUnavailable, match=f"Qdrant at {url} is not reachable"):
        store.open_current()


class _RefusingQdrant(BaseHTTPRequestHandler):
    """Answers every request the way a Qdrant server without the right API key does."""

    def do_GET(self) -> None:
        body = json.dumps({"status": {"error": "Must provide an API key"}}).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_server_refusal_is_reported_with_qdrants_reason():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _RefusingQdrant)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        store = ServerIndexStore(QdrantClient(url=url, timeout=2, check_compatibility=False), "kb", url=url)
        with pytest.raises(IndexUnavailable, match="answered 401 Unauthorized: Must provide an API key"):
            store.open_current()
    finally:
        server.shutdown()
        server.server_close()


def test_open_index_store_picks_the_backend(tmp_path: Path):
    embedded = open_index_store(Settings(data_dir=tmp_path))
    assert isinstance(embedded, EdgeIndexStore) and embedded.root == tmp_path / "index"
    server = open_index_store(Settings(data_dir=tmp_path, qdrant_url="http://127.0.0.1:1", collection="docs"))
    assert isinstance(server, ServerIndexStore) and server.alias == "docs"


# --- a document version written in batches ---------------------------------------------------------


def test_batches_of_a_new_version_sit_beside_the_served_one_until_the_others_are_deleted(make_index):
    index = make_index()
    index.replace_document("a", 1, [item(chunk("a", 1, i, f"old wording {i}")) for i in range(3)])
    index.replace_document("b", 1, [item(chunk("b", 1, 0, "other wording"))])
    index.upsert([item(chunk("a", 2, 0, "new wording 0")), item(chunk("a", 2, 1, "new wording 1"))])
    index.upsert([item(chunk("a", 2, 2, "new wording 2"))])
    index.upsert([])  # an empty batch is no request
    assert index.document_versions() == {"a": {1, 2}, "b": {1}}  # the old version still serves meanwhile
    assert index.count() == 7
    index.delete_other_versions("a", 2)
    assert index.document_versions() == {"a": {2}, "b": {1}}
    assert sorted(c.chunk_id for c, _ in search(index, "wording")) == ["a:2:0", "a:2:1", "a:2:2", "b:1:0"]


def test_upserting_the_same_batch_twice_leaves_the_same_points(make_index):
    index = make_index()
    batch = [item(chunk("a", 1, i, f"text {i}")) for i in range(3)]
    index.upsert(batch)
    index.upsert(batch)
    assert index.count() == 3


def test_a_version_that_failed_midway_can_be_removed_alone(make_index):
    index = make_index()
    index.replace_document("a", 1, [item(chunk("a", 1, 0, "served parking rules"))])
    index.replace_document("b", 3, [item(chunk("b", 3, 0, "parking of b"))])
    index.upsert([item(chunk("a", 2, i, f"half written parking {i}")) for i in range(4)])
    index.delete_version("a", 2)
    assert index.document_versions() == {"a": {1}, "b": {3}}
    index.delete_version("b", 2)  # no such version: nothing happens
    assert texts(search(index, "parking", flt=SearchFilter(doc_ids=("a",)))) == ["served parking rules"]


def test_upsert_checks_dense_vectors_like_replace_document(make_index):
    index = make_index(HAND_MADE)
    with pytest.raises(ValueError, match="3-dimensional"):
        index.upsert([item(chunk("a", 1, 0, "text"), dense=[1.0, 0.0])])
    assert index.count() == 0


def test_edge_upsert_refuses_a_batch_that_would_fill_the_disk(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    from kb.storage import MIN_FREE_BYTES, DataDirError

    index = EdgeIndexStore(tmp_path / "index").create(KEYWORD)
    real = shutil.disk_usage
    Usage = namedtuple("Usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(*real(path)[:2], MIN_FREE_BYTES + 100_000))
    index.upsert([item(chunk("a", 1, 0, "fits"))])  # one point: about 8 KB
    with pytest.raises(DataDirError, match="no space left"):
        index.upsert([item(chunk("a", 1, i, f"text {i}")) for i in range(1, 101)])
    monkeypatch.setattr(shutil, "disk_usage", real)
    assert index.count() == 1 and index.unoptimized == 1
    index.close()
