"""Retriever: query encoding, superseded versions dropped, ranks 1..k; Passages carry what answers cite."""

from kb.embedding import Bm25Encoder
from kb.index import SearchFilter
from kb.records import Chunk, SparseVector
from kb.retrieval import SUPERSEDED_HEADROOM, Retriever, diversified, fuse


def chunk(doc_id: str, version: int, seq: int, text: str = "Annual leave is requested in the HR portal.") -> Chunk:
    return Chunk(f"{doc_id}:{version}:{seq}", doc_id, version, seq, f"{doc_id}.md", text, page_start=seq + 1)


class FakeIndex:
    """Returns the hits it was given (best first), up to `limit`, and records how it was asked.

    `dense_hits` answer a query by meaning (a list of floats); `hits` answer one by keywords.
    """

    def __init__(self, hits: list[tuple[Chunk, float]], dense_hits: list[tuple[Chunk, float]] | None = None):
        self.hits = hits
        self.dense_hits = dense_hits or []
        self.chunks = {c.chunk_id: c for c, _ in self.hits + self.dense_hits}
        self.calls: list[dict] = []
        self.fetched: list[str] = []

    def search_ids(self, query: SparseVector | list[float], limit: int,
                   flt: SearchFilter | None = None) -> list[tuple[str, float]]:
        self.calls.append({"query": query, "limit": limit, "flt": flt})
        return [(c.chunk_id, s) for c, s in (self.hits if isinstance(query, SparseVector) else self.dense_hits)[:limit]]

    def fetch(self, point_ids: list[str]) -> dict[str, Chunk]:
        self.fetched += point_ids
        return {pid: self.chunks[pid] for pid in point_ids}


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
                          is_current=lambda chunks, flt: [serving[c.doc_id] == c.version for c in chunks])

    passages = retriever.search("how do I request annual leave", k=3)

    assert [p.chunk.chunk_id for p in passages] == ["leave:2:0", "travel:1:0", "leave:2:1"]
    assert [p.rank for p in passages] == [1, 2, 3]
    # re-ranked scores (`diversified`): own score over the best, plus document evidence, repeats halved
    assert [round(p.score, 4) for p in passages] == [1.0, 0.8696, 0.3688]
    assert index.calls[0]["limit"] > 3  # room for the dropped chunks


def test_keyword_mode_sends_sparse_query_and_filter_only():
    index = FakeIndex([(chunk("leave", 1, 0), 1.0)])
    retriever = Retriever(lambda: index, Bm25Encoder())
    flt = SearchFilter(doc_ids=("leave",))

    retriever.search("annual leave", k=1, flt=flt)

    [call] = index.calls
    assert retriever.mode == "keyword"
    assert call["flt"] == flt
    assert call["query"].indices == Bm25Encoder().encode_query("annual leave").indices


def test_hybrid_mode_searches_by_keywords_and_by_meaning_and_fuses_them():
    leave, sick, pension = chunk("leave", 1, 0), chunk("sick", 1, 0), chunk("pension", 1, 0)
    index = FakeIndex([(leave, 9.0), (sick, 3.0)], dense_hits=[(pension, 0.9), (sick, 0.8), (leave, 0.1)])
    flt = SearchFilter(groups=("hr",))
    retriever = Retriever(lambda: index, Bm25Encoder(), dense=FakeDense(), dense_weight=0.5)

    passages = retriever.search("annual leave", k=3, flt=flt)

    assert retriever.mode == "hybrid"
    keywords, meaning = index.calls
    assert isinstance(keywords["query"], SparseVector) and meaning["query"] == FakeDense().embed_query("annual leave")
    assert keywords["flt"] == meaning["flt"] == flt and keywords["limit"] >= 50  # depth before fusion
    # normalised: leave 1 + 0, sick 0 + 0.875, pension 0 (absent from keywords) + 1, halved...
    fused = fuse(index.hits, index.dense_hits, 0.5)
    assert [(found.doc_id, round(score, 4)) for found, score in fused] == [("leave", 0.5), ("pension", 0.5), ("sick", 0.4375)]
    # ...then re-ranked over the best (one passage per document: the document evidence keeps the order)
    assert [(p.chunk.doc_id, round(p.score, 4)) for p in passages] == [("leave", 1.0), ("pension", 1.0), ("sick", 0.875)]


def test_hybrid_mode_reads_only_the_texts_of_the_fused_winners():
    keyword = [(chunk(f"k{i}", 1, 0), 100.0 - i) for i in range(60)]
    dense = [(chunk(f"d{i}", 1, 0), 1.0 - i / 100) for i in range(60)]
    index = FakeIndex(keyword, dense_hits=dense)
    retriever = Retriever(lambda: index, Bm25Encoder(), dense=FakeDense(), dense_weight=0.5)

    passages = retriever.search("annual leave", k=3)

    assert [call["limit"] for call in index.calls] == [50, 50]  # 100 candidates found...
    assert len(index.fetched) == 3 + SUPERSEDED_HEADROOM  # ...and only the best read
    assert [p.chunk.doc_id for p in passages] == ["k0", "d0", "k1"]


def test_the_dense_weight_moves_the_ranking_from_keywords_to_meaning():
    a, b, c = chunk("a", 1, 0), chunk("b", 1, 0), chunk("c", 1, 0)
    keyword, dense = [(a, 5.0), (b, 4.0), (c, 1.0)], [(c, 0.9), (b, 0.7), (a, 0.2)]
    order = lambda weight: [found.doc_id for found, _ in fuse(keyword, dense, weight)]  # noqa: E731
    assert order(0.0) == ["a", "b", "c"]
    assert order(1.0) == ["c", "b", "a"]
    assert order(0.2) == ["a", "b", "c"] and order(0.8) == ["c", "b", "a"]
    assert fuse([(a, 2.0), (b, 2.0)], [], 0.0) == [(a, 1.0), (b, 1.0)]  # equal scores all count as the best


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


def test_passages_carry_what_an_answer_cites():
    # was: KBRetriever's LangChain Documents carried these fields in `metadata`; the answer chain now takes
    # the Passages themselves, so the same fields are asserted on them.
    index = FakeIndex([(chunk("leave", 1, 0), 2.5), (chunk("leave", 1, 1, "Sick leave needs a note."), 1.5)])
    retriever = Retriever(lambda: index, Bm25Encoder())

    passages = retriever.search("annual leave", k=2, flt=SearchFilter(groups=("hr",)))

    assert passages[0].chunk.text == "Annual leave is requested in the HR portal."
    second = passages[1]
    assert {
        "doc_id": second.chunk.doc_id, "chunk_id": second.chunk.chunk_id, "source": second.chunk.source,
        "page": second.chunk.page_start, "section": second.chunk.section, "score": second.score, "rank": second.rank,
    } == {
        "doc_id": "leave", "chunk_id": "leave:1:1", "source": "leave.md",
        "page": 2, "section": None, "score": 0.36, "rank": 2,
    }
    assert [p.rank for p in passages] == [1, 2]
    assert index.calls[0]["flt"] == SearchFilter(groups=("hr",))


class BrokenDense(FakeDense):
    def embed_query(self, text: str) -> list[float]:
        raise ConnectionError("embedding endpoint is down")


def test_a_failing_dense_model_falls_back_to_keywords(caplog):
    index = FakeIndex([(chunk("leave", 1, 0), 3.0)])
    retriever = Retriever(index=lambda: index, sparse=Bm25Encoder(), dense=BrokenDense())
    passages = retriever.search("annual leave", k=1)
    assert [p.chunk.doc_id for p in passages] == ["leave"]
    [call] = index.calls
    assert isinstance(call["query"], SparseVector) and call["query"].indices
    assert "keywords only" in caplog.text


def test_a_passage_across_pages_is_cited_at_the_page_its_match_stands_on():
    from kb.embedding import Bm25Encoder
    from kb.records import Chunk, Passage
    from kb.retrieval import matched_page

    text = "Annual leave is requested in the portal.\n\nPart-time staff accrue leave pro rata, part-time rules apply."
    second = text.index("Part-time")
    crossing = Chunk("d:1:0", "d", 1, 0, "hr.pdf", text, page_start=12, page_end=13,
                     page_starts=((0, 12), (second, 13)))
    bm25 = Bm25Encoder(avg_len=10)
    terms = set(bm25.encode_query("part-time staff").indices)
    assert matched_page(crossing, terms, bm25.query_terms) == 13
    assert matched_page(crossing, set(bm25.encode_query("annual leave portal").indices), bm25.query_terms) == 12
    passage = Passage(crossing, 1.0, 1, match_page=13)
    assert (passage.page, passage.pages) == (13, (12, 13))
    assert passage.page_label() == "pp. 12–13, match on p. 13"
    single = Chunk("d:1:1", "d", 1, 1, "hr.pdf", "x", page_start=4, page_end=4, page_starts=((0, 4),))
    assert Passage(single, 1.0, 1).page_label() == "p. 4" and Passage(single, 1.0, 1).page == 4


def test_one_document_does_not_fill_the_list() -> None:
    crowd = [(chunk("handbook", 1, i), 10.0 - i * 0.1) for i in range(6)]
    others = [(chunk("faq", 1, 0), 8.0), (chunk("memo", 1, 0), 7.5)]
    ranked = diversified(crowd + others, 4, document_weight=0.3, decay=0.5)
    assert [found.doc_id for found, _ in ranked] == ["handbook", "faq", "memo", "handbook"]
    assert [score for _, score in ranked] == sorted((score for _, score in ranked), reverse=True)
    # without the decay the one document takes every place
    assert {found.doc_id for found, _ in diversified(crowd + others, 4, 0.0, 1.0)} == {"handbook"}


def test_a_documents_other_matches_lift_its_passage() -> None:
    # the filing's net-sales table never names the company; its other passages do
    table, lone = chunk("apple-10q", 1, 0), chunk("intel-10q", 1, 0)
    hits = [(lone, 10.0), (table, 9.5), (chunk("apple-10q", 1, 1), 9.0), (chunk("apple-10q", 1, 2), 8.0)]
    assert [found.chunk_id for found, _ in diversified(hits, 2, 0.3, 0.5)] == [table.chunk_id, lone.chunk_id]
    assert [found.chunk_id for found, _ in diversified(hits, 2, 0.0, 0.5)] == [lone.chunk_id, table.chunk_id]


def test_the_page_of_a_match_is_the_one_holding_most_distinct_query_terms():
    from kb.embedding import Bm25Encoder
    from kb.records import Chunk
    from kb.retrieval import matched_page

    text = "Leave leave leave, and more leave.\n\nParental leave for part-time staff."
    second = text.index("Parental")
    crossing = Chunk("d:1:0", "d", 1, 0, "hr.pdf", text, page_start=12, page_end=13, page_starts=((0, 12), (second, 13)))
    bm25 = Bm25Encoder(avg_len=10)
    terms = set(bm25.encode_query("parental leave part-time").indices)
    assert matched_page(crossing, terms, bm25.query_terms) == 13  # 4 "leave" on p. 12, but 3 distinct terms on 13
