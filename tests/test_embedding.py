"""Text -> vectors: BM25 from qdrant-edge, dense from a tiny fastembed model and a fake OpenAI server."""

from __future__ import annotations

import math
import socket

import pytest
from tiny_model import MODEL_NAME, build_tiny_model

from kb.config import Settings
from kb.embedding import (
    Bm25Encoder,
    EmbeddingUnavailable,
    FastEmbedEmbedder,
    OpenAIEmbedder,
    make_dense_embedder,
)
from kb.records import SparseVector


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b)) / (math.hypot(*a) * math.hypot(*b))


# --- BM25 ---------------------------------------------------------------------------------------


def test_bm25_stems_so_word_forms_share_a_term():
    bm25 = Bm25Encoder()
    assert bm25.query_terms("leaves") == bm25.query_terms("leave") == bm25.query_terms("Leaving")
    assert bm25.query_terms("annual leave") >= bm25.query_terms("leave")


def test_bm25_documents_and_queries_use_the_same_terms():
    bm25 = Bm25Encoder()
    document = bm25.encode_documents(["Employees get 25 days of annual leave."])[0]
    query = bm25.encode_query("the days of leave")
    assert set(query.indices) < set(document.indices)
    assert query.values == [1.0] * len(query.indices)


@pytest.mark.parametrize("text", ["", "   ", "the and of to be"])
def test_bm25_text_without_terms_gives_an_empty_vector(text):
    bm25 = Bm25Encoder()
    empty = SparseVector(indices=[], values=[])
    assert bm25.encode_documents([text]) == [empty]
    assert bm25.encode_query(text) == empty
    assert bm25.token_count(text) == 0


def test_bm25_token_count_drops_stop_words_and_counts_repeats():
    bm25 = Bm25Encoder()
    assert bm25.token_count("The leave policy: leave is granted by the manager.") == 5
    assert bm25.token_count("leave " * 5000) == 5000


def test_bm25_longer_documents_weigh_a_term_less():
    bm25 = Bm25Encoder(avg_len=4)
    (pension,) = bm25.query_terms("pension")
    short, long = bm25.encode_documents(["pension", "pension rules apply to staff hired before the merger"])
    assert bm25.avg_len == 4
    assert short.values[short.indices.index(pension)] > long.values[long.indices.index(pension)]


def test_bm25_rejects_a_non_positive_average_length():
    with pytest.raises(ValueError, match="positive"):
        Bm25Encoder(avg_len=0)


# --- fastembed ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_embedder(tmp_path_factory) -> FastEmbedEmbedder:
    folder = build_tiny_model(tmp_path_factory.mktemp("tiny-model"), dim=16)
    return FastEmbedEmbedder(MODEL_NAME, cache_dir=tmp_path_factory.mktemp("cache"), local_path=folder)


def test_fastembed_loads_a_model_from_a_folder(tiny_embedder):
    assert tiny_embedder.model_id == f"fastembed:{MODEL_NAME}"
    assert tiny_embedder.dim == 16
    vectors = tiny_embedder.embed_documents(["holiday allowance", "laptop security", "travel booking"])
    assert [len(v) for v in vectors] == [16, 16, 16]
    assert all(isinstance(x, float) for x in vectors[0])
    assert tiny_embedder.embed_documents([]) == []


def test_fastembed_vectors_carry_meaning(tiny_embedder):
    vacation = tiny_embedder.embed_query("vacation")
    holiday, laptop = tiny_embedder.embed_documents(["holiday", "laptop"])
    assert cosine(vacation, holiday) > 0.99
    assert cosine(vacation, laptop) < 0.9
    assert tiny_embedder.embed_query("") != []


def test_fastembed_folder_model_can_be_loaded_again(tiny_embedder, tmp_path):
    again = FastEmbedEmbedder(MODEL_NAME, cache_dir=tmp_path, local_path=build_tiny_model(tmp_path / "copy", dim=16))
    assert again.embed_query("pension") == pytest.approx(tiny_embedder.embed_query("pension"))


def test_fastembed_folder_without_a_model_is_reported(tmp_path):
    with pytest.raises(EmbeddingUnavailable, match="holds no ONNX model"):
        FastEmbedEmbedder("kb-tests/empty-folder", cache_dir=tmp_path, local_path=tmp_path)
    with pytest.raises(EmbeddingUnavailable, match="is not a folder"):
        FastEmbedEmbedder(MODEL_NAME, cache_dir=tmp_path, local_path=tmp_path / "missing")


def test_fastembed_named_model_offline_and_not_cached_is_reported(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the download attempt fails at once, without network
    with pytest.raises(EmbeddingUnavailable, match="is not available offline: put it in KB_EMBEDDING_PATH"):
        FastEmbedEmbedder("BAAI/bge-small-en-v1.5", cache_dir=tmp_path)


def test_fastembed_unknown_model_without_a_folder_is_reported(tmp_path):
    with pytest.raises(EmbeddingUnavailable, match="does not know embedding model"):
        FastEmbedEmbedder("nobody/no-such-model", cache_dir=tmp_path)


# --- OpenAI-compatible endpoint -------------------------------------------------------------------


def test_openai_embeddings_in_batches(fake_openai):
    embedder = OpenAIEmbedder("my-embedder", api_key="k", base_url=fake_openai.base_url, timeout=5, batch_size=2)
    texts = ["holiday allowance", "laptop security", "travel booking", "pension", "salary"]
    vectors = embedder.embed_documents(texts)
    assert vectors == [fake_openai.embed(t) for t in texts]
    bodies = [body for path, body in fake_openai.requests if path.endswith("/embeddings")]
    assert [len(b["input"]) for b in bodies] == [2, 2, 1]
    assert {b["encoding_format"] for b in bodies} == {"float"}
    assert embedder.model_id == "openai:my-embedder"
    assert embedder.dim == fake_openai.embedding_dim


def test_openai_dimension_comes_from_the_first_answer_or_the_known_table(fake_openai):
    unknown = OpenAIEmbedder("my-embedder", api_key="k", base_url=fake_openai.base_url)
    assert unknown.dim == fake_openai.embedding_dim
    known = OpenAIEmbedder("text-embedding-3-small", api_key="k", base_url=fake_openai.base_url)
    requests_before = len(fake_openai.requests)
    assert known.dim == 1536
    assert len(fake_openai.requests) == requests_before


def test_openai_failures_are_retried_then_reported(fake_openai):
    fake_openai.failure = "error"
    embedder = OpenAIEmbedder("my-embedder", api_key="k", base_url=fake_openai.base_url, max_retries=2)
    with pytest.raises(EmbeddingUnavailable, match=f"embedding with my-embedder at {fake_openai.base_url} failed"):
        embedder.embed_query("pension")
    assert len(fake_openai.requests) == 3


def test_openai_unreachable_endpoint_is_reported():
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    embedder = OpenAIEmbedder("m", api_key="k", base_url=f"http://127.0.0.1:{port}/v1", timeout=2, max_retries=0)
    with pytest.raises(EmbeddingUnavailable, match="failed: Connection error"):
        embedder.embed_query("pension")


# --- configuration --------------------------------------------------------------------------------


def test_no_embedding_configured_means_keyword_only(tmp_path):
    assert make_dense_embedder(Settings(data_dir=tmp_path)) is None


def test_configured_fastembed_folder(tmp_path):
    folder = build_tiny_model(tmp_path / "model")
    settings = Settings(data_dir=tmp_path, embedding=f"fastembed:{MODEL_NAME}", embedding_path=str(folder))
    embedder = make_dense_embedder(settings)
    assert isinstance(embedder, FastEmbedEmbedder) and embedder.dim == 16


def test_configured_openai(tmp_path, fake_openai):
    settings = Settings(data_dir=tmp_path, embedding="openai:my-embedder", openai_base_url=fake_openai.base_url)
    embedder = make_dense_embedder(settings)
    assert isinstance(embedder, OpenAIEmbedder)
    assert embedder.embed_query("pension") == fake_openai.embed("pension")


@pytest.mark.parametrize(
    ("embedding", "reason"),
    [
        ("openai:text-embedding-3-small", "needs OPENAI_API_KEY"),
        ("word2vec:x", "not understood"),
        ("fastembed:", "not understood"),
    ],
)
def test_unusable_embedding_settings_are_reported(tmp_path, embedding, reason):
    with pytest.raises(EmbeddingUnavailable, match=reason):
        make_dense_embedder(Settings(data_dir=tmp_path, embedding=embedding))
