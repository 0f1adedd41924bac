"""Retriever: query encoding, superseded versions dropped, ranks 1..k; KBRetriever inside LCEL."""

from langchain_core.runnables import RunnableParallel, RunnablePassthrough

from kb.embedding import Bm25Encoder
from kb.index import SearchFilter
from kb.records import Chunk, SparseVector
from kb.retrieval import KBRetriever, Retriever, passages_from_documents


def chunk(doc_id: str, version: int, seq: int, text: str = "Annual leave is requested in the HR portal.") -> Chunk:
    return Chunk(f"{doc_id}:{version}:{seq}", doc_id, version, seq, f"{doc_id}.md", text, page_start=seq + 1)


class FakeIndex:
    """Returns the hits it was given (best first), up to `limit`, and records how it was asked."""

    def __init__(self, hits: list[tuple[Chunk, float]]):
        self.hits = hits
        self.calls: list[dict] = []

    def search(self, sparse: SparseVector, dense: list[float] | None, limit: int,
               flt: SearchFilter | None = None, dense_weight: float = 1.0) -> list[tuple[Chunk, float]]:
        self.calls.append({"sparse": sparse, "dense": dense, "limit": limit, "flt": flt, "dense_weight": dense_weight})
        return self.hits[:limit]


class FakeDense:
    model_id = "fake:dense"
    dim = 3

    def embed_query(self, text: str) -> list[float]:
        return [1.0, 0.0, float(len(text))]


def test_drops_chunks_of_superseded_versions_and_ranks_from_one():
    hits = [(chunk("leave", 1, 0), 9.0), (chunk("leave", 2, 0), 8.0), (chunk("travel", 1, 0), 7.0),
            (chunk("leave", 1, 1), 6.0), (chunk("leave", 2, 1), 5.0), (chunk("travel", 1, 1), 4.0)]
    serving = {"leave": 2, "travel": 1}
    index = FakeIndex(hits)
    retriever = Retriever(lambda: index, Bm25Encoder(),
                          is_current=lambda chunks: [serving[c.doc_id] == c.version for c in chunks])

    passages = retriever.search("how do I request annual leave", k=3)

    assert [p.chunk.chunk_id for p in passages] == ["leave:2:0", "travel:1:0", "leave:2:1"]
    assert [p.rank for p in passages] == [1, 2, 3]
    assert [p.score for p in passages] == [8.0, 7.0, 5.0]
    assert index.calls[0]["limit"] > 3  # room for the dropped chunks


def test_keyword_mode_sends_sparse_query_and_filter_only():
    index = FakeIndex([(chunk("leave", 1, 0), 1.0)])
    retriever = Retriever(lambda: index, Bm25Encoder())
    flt = SearchFilter(doc_ids=("leave",))

    retriever.search("annual leave", k=1, flt=flt)

    call = index.calls[0]
    assert retriever.mode == "keyword"
    assert call["dense"] is None and call["flt"] == flt
    assert call["sparse"].indices == Bm25Encoder().encode_query("annual leave").indices


def test_hybrid_mode_sends_dense_vector_and_weight():
    index = FakeIndex([(chunk("leave", 1, 0), 1.0)])
    retriever = Retriever(lambda: index, Bm25Encoder(), dense=FakeDense(), dense_weight=0.5)

    retriever.search("annual leave", k=1)

    assert retriever.mode == "hybrid"
    assert index.calls[0]["dense"] == FakeDense().embed_query("annual leave")
    assert index.calls[0]["dense_weight"] == 0.5


def test_blank_or_stop_word_query_returns_nothing_without_searching():
    index = FakeIndex([(chunk("leave", 1, 0), 1.0)])
    retriever = Retriever(lambda: index, Bm25Encoder())

    assert retriever.search("   ") == []
    assert retriever.search("what is it?") == []
    assert index.calls == []


def test_searches_whichever_index_is_serving_now():
    serving = {"index": FakeIndex([(chunk("old", 1, 0), 1.0)])}
    retriever = Retriever(lambda: serving["index"], Bm25Encoder())
    assert retriever.search("leave")[0].chunk.doc_id == "old"

    serving["index"] = FakeIndex([(chunk("new", 1, 0), 1.0)])

    assert retriever.search("leave")[0].chunk.doc_id == "new"


def test_kb_retriever_documents_carry_passages_inside_an_lcel_chain():
    index = FakeIndex([(chunk("leave", 1, 0), 2.5), (chunk("leave", 1, 1, "Sick leave needs a note."), 1.5)])
    retriever = KBRetriever(retriever=Retriever(lambda: index, Bm25Encoder()), k=2,
                            flt=SearchFilter(groups=("hr",)))
    chain = RunnableParallel(context=retriever, question=RunnablePassthrough())

    result = chain.invoke("annual leave")

    docs = result["context"]
    assert result["question"] == "annual leave"
    assert docs[0].page_content == "Annual leave is requested in the HR portal."
    assert docs[1].metadata | {"passage": None} == {
        "passage": None, "doc_id": "leave", "chunk_id": "leave:1:1", "source": "leave.md",
        "page": 2, "section": None, "score": 1.5, "rank": 2,
    }
    assert [p.rank for p in passages_from_documents(docs)] == [1, 2]
    assert index.calls[0]["flt"] == SearchFilter(groups=("hr",))


class BrokenDense(FakeDense):
    def embed_query(self, text: str) -> list[float]:
        raise ConnectionError("embedding endpoint is down")


def test_a_failing_dense_model_falls_back_to_keywords(caplog):
    index = FakeIndex([(chunk("leave", 1, 0), 3.0)])
    retriever = Retriever(index=lambda: index, sparse=Bm25Encoder(), dense=BrokenDense())
    passages = retriever.search("annual leave", k=1)
    assert [p.chunk.doc_id for p in passages] == ["leave"]
    assert index.calls[0]["dense"] is None and index.calls[0]["sparse"].indices
    assert "keywords only" in caplog.text
