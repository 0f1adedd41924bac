"""Text -> vectors: BM25 sparse vectors always, dense vectors when a model is configured.

BM25 comes from qdrant-edge's analyzer (stop words + Snowball stemming); its term hashes equal
fastembed's `Qdrant/bm25`, so an embedded shard and a Qdrant server see the same vectors. Dense
models are pluggable: an ONNX model run by fastembed (no torch), or any OpenAI-compatible endpoint.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from qdrant_edge import Bm25, Bm25Config
from qdrant_edge import SparseVector as EdgeSparseVector

from kb.config import Settings
from kb.errors import EmbeddingUnavailable, first_line
from kb.records import SparseVector

if TYPE_CHECKING:
    from fastembed import TextEmbedding
    from fastembed.common.model_description import DenseModelDescription

DEFAULT_AVG_LEN = 256.0  # Qdrant's default; a re-index replaces it with the corpus mean
BM25_LANGUAGE = "english"

# With b=0 a BM25 document weight depends on term frequency alone, w = tf*(k+1)/(tf+k), so it can be
# inverted exactly. A large k keeps that inversion well conditioned for very frequent terms.
_COUNTING_K = 10_000.0


class Bm25Encoder:
    """BM25 sparse vectors for documents and queries, and the analyzer's terms for a text."""

    def __init__(self, avg_len: float = DEFAULT_AVG_LEN):
        if avg_len <= 0:
            raise ValueError(f"BM25 average length must be positive, got {avg_len}")
        self._avg_len = float(avg_len)
        self._model = Bm25(Bm25Config(language=BM25_LANGUAGE, avg_len=self._avg_len))
        self._counter = Bm25(Bm25Config(language=BM25_LANGUAGE, k=_COUNTING_K, b=0.0))

    @property
    def avg_len(self) -> float:
        return self._avg_len

    def encode_documents(self, texts: list[str]) -> list[SparseVector]:
        return [_to_record(self._model.embed_document(text)) for text in texts]

    def encode_query(self, text: str) -> SparseVector:
        return _to_record(self._model.embed_query(text))

    def token_count(self, text: str) -> int:
        """How many terms the analyzer keeps (stop words dropped): the document length BM25 normalizes by.

        qdrant-edge exposes no tokenizer, so the count is read back from a length-free BM25 vector.
        """
        weights = self._counter.embed_document(text).values
        return round(sum(w * _COUNTING_K / (_COUNTING_K + 1 - w) for w in weights))

    def query_terms(self, text: str) -> set[int]:
        """The hashed terms of `text`, so callers can compare texts after stemming ("leaves" == "leave")."""
        return set(self._model.embed_query(text).indices)


def _to_record(vector: EdgeSparseVector) -> SparseVector:
    return SparseVector(indices=list(vector.indices), values=list(vector.values))


class DenseEmbedder(Protocol):
    """A dense text embedding model. `model_id` is recorded with the index so models are never mixed."""

    @property
    def model_id(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def embed_documents(self, texts: list[str]) -> list[list[float]]: ...

    def embed_query(self, text: str) -> list[float]: ...


# Passages per model call. fastembed's default of 256 passages of up to 512 tokens needs over 20 GB for a
# BERT-size model's attention (all-MiniLM-L6-v2 was killed at 24 GB); 16 embeds as fast in about 0.5 GB.
EMBED_BATCH = 16

# Where an exported model keeps its ONNX graph, in the order fastembed's own models use them.
_ONNX_FILES = ("model_optimized.onnx", "model.onnx", "onnx/model.onnx")


class FastEmbedEmbedder:
    """An ONNX model run by fastembed. Never waits on a blocked network: local first, one download at most."""

    def __init__(self, model_name: str, cache_dir: Path, local_path: Path | None = None):
        self.model_id = f"fastembed:{model_name}"
        self._model = _load_fastembed(model_name, cache_dir, local_path)
        self.dim = len(self.embed_query("dimension probe"))

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [vector.tolist() for vector in self._model.passage_embed(texts, batch_size=EMBED_BATCH)]

    def embed_query(self, text: str) -> list[float]:
        return next(iter(self._model.query_embed(text))).tolist()


def _load_fastembed(name: str, cache_dir: Path, local_path: Path | None) -> TextEmbedding:
    try:
        from fastembed import TextEmbedding
    except ImportError as exc:
        raise EmbeddingUnavailable("fastembed is not installed: pip install 'kb[dense]'") from exc

    if local_path is not None:  # the air-gapped path: everything comes from the folder
        if not local_path.is_dir():
            raise EmbeddingUnavailable(f"KB_EMBEDDING_PATH {local_path} is not a folder")
        if _known_model(name) is None:
            _register_folder_model(name, local_path)
        try:
            return TextEmbedding(
                name, cache_dir=str(cache_dir), specific_model_path=str(local_path), local_files_only=True
            )
        except Exception as exc:  # fastembed raises ValueError, onnxruntime its own errors
            raise EmbeddingUnavailable(
                f"embedding model {name} could not be loaded from {local_path}: {first_line(exc)}"
            ) from exc

    description = _known_model(name)
    if description is None:
        raise EmbeddingUnavailable(
            f"fastembed does not know embedding model {name}: put its ONNX files in KB_EMBEDDING_PATH"
        )
    try:
        return TextEmbedding(name, cache_dir=str(cache_dir), local_files_only=True)
    except ValueError:
        pass  # not cached yet
    try:
        # TextEmbedding itself would retry three times with sleeps (~39 s offline); one attempt is enough
        TextEmbedding.download_model(description, str(cache_dir), retries=1)
        return TextEmbedding(name, cache_dir=str(cache_dir), local_files_only=True)
    except Exception as exc:  # any network or hub error means the same thing to the user
        raise EmbeddingUnavailable(
            f"embedding model {name} is not available offline: put it in KB_EMBEDDING_PATH or allow a download"
        ) from exc


def _known_model(name: str) -> DenseModelDescription | None:
    from fastembed import TextEmbedding

    # the private listing returns descriptions (the public one returns dicts), which download_model takes
    return next((m for m in TextEmbedding._list_supported_models() if m.model.lower() == name.lower()), None)


def _register_folder_model(name: str, folder: Path) -> None:
    """Teach fastembed a model it does not know, from what the exported folder says about itself."""
    from fastembed import TextEmbedding
    from fastembed.common.model_description import ModelSource, PoolingType

    model_file = next((f for f in _ONNX_FILES if (folder / f).is_file()), None)
    if model_file is None:
        raise EmbeddingUnavailable(f"{folder} holds no ONNX model (looked for {', '.join(_ONNX_FILES)})")
    pooling = _read_json(folder / "1_Pooling" / "config.json")  # written by sentence-transformers
    config = _read_json(folder / "config.json")
    TextEmbedding.add_custom_model(
        name,
        pooling=PoolingType.CLS if pooling.get("pooling_mode_cls_token") else PoolingType.MEAN,
        normalization=True,
        sources=ModelSource(hf=name),  # required by fastembed, never used: the folder is the source
        dim=int(config.get("hidden_size", 0)),  # informational only: kb measures the dimension itself
        model_file=model_file,
    )


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


# Dimensions of OpenAI's own models; any other model's is read from its first answer.
OPENAI_DIMS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536}


class OpenAIEmbedder:
    """Dense vectors from an OpenAI-compatible embeddings endpoint (OpenAI, vLLM, Ollama, ...)."""

    def __init__(
        self,
        model: str,
        api_key: str,
        base_url: str | None = None,
        timeout: float = 30.0,
        max_retries: int = 2,
        batch_size: int = 256,
    ):
        from openai import OpenAI

        self.model_id = f"openai:{model}"
        self._model = model
        self._where = base_url or "api.openai.com"
        self._batch_size = batch_size
        self._dim = OPENAI_DIMS.get(model)
        self._client = OpenAI(api_key=api_key, base_url=base_url or None, timeout=timeout, max_retries=max_retries)

    @property
    def dim(self) -> int:
        if self._dim is None:
            self.embed_query("dimension probe")
        assert self._dim is not None
        return self._dim

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self._batch_size):
            vectors.extend(self._embed(texts[start : start + self._batch_size]))
        return vectors

    def embed_query(self, text: str) -> list[float]:
        return self._embed([text])[0]

    def _embed(self, texts: list[str]) -> list[list[float]]:
        import openai

        try:
            # "float" explicitly: the client's default (base64) is not understood by every compatible server
            response = self._client.embeddings.create(model=self._model, input=texts, encoding_format="float")
        except openai.OpenAIError as exc:
            raise EmbeddingUnavailable(
                f"embedding with {self._model} at {self._where} failed: {first_line(exc)}"
            ) from exc
        vectors = [item.embedding for item in sorted(response.data, key=lambda item: item.index)]
        if self._dim is None and vectors:
            self._dim = len(vectors[0])
        return vectors


def make_dense_embedder(settings: Settings) -> DenseEmbedder | None:
    """The dense model `KB_EMBEDDING` names, or None for keyword search only."""
    configured = settings.embedding.strip()
    if not configured:
        return None
    provider, _, name = configured.partition(":")
    if provider == "fastembed" and name:
        local_path = Path(settings.embedding_path).expanduser() if settings.embedding_path else None
        return FastEmbedEmbedder(name, cache_dir=settings.data_dir / "models", local_path=local_path)
    if provider == "openai" and name:
        if not settings.llm_enabled:  # neither a key nor an endpoint
            raise EmbeddingUnavailable(f"KB_EMBEDDING={configured} needs OPENAI_API_KEY (or OPENAI_BASE_URL)")
        return OpenAIEmbedder(
            name,
            api_key=settings.openai_key,  # a placeholder for keyless local servers, which still need a non-empty key
            base_url=settings.openai_base_url or None,
            timeout=settings.timeout_s,
        )
    raise EmbeddingUnavailable(f"KB_EMBEDDING={configured!r} is not understood: use fastembed:MODEL or openai:MODEL")
