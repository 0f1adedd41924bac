"""The index on a Qdrant server (KB_QDRANT_URL), through qdrant-client.

Each generation is a collection f"{alias}-{n}" with a named "dense" cosine vector and a "bm25" sparse
vector scored with IDF, keyword payload indexes on doc_id and groups and an integer one on version.
The alias names the serving collection; a promote moves it in one request. The IndexSpec travels in
the collection's metadata. Imported only when a server is configured: qdrant-client takes seconds
to import.

Every request has the KB_TIMEOUT timeout and is retried with exponential backoff when the server is
unreachable, times out, is overloaded (429) or fails (5xx). Only idempotent requests are made: point
ids are derived from chunk ids, so sending the same update twice leaves the same points.
"""

from __future__ import annotations

import math
import random
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any, Callable, TypeVar

import httpx
from qdrant_client import QdrantClient, models
from qdrant_client.common.client_exceptions import ResourceExhaustedResponse
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from kb.config import Settings
from kb.errors import IndexUnavailable
from kb.index import base
from kb.index.base import DENSE, SCROLL_PAGE, SPARSE, FilterVocabulary, IndexedChunk, IndexSpec, Query, SearchFilter
from kb.records import Chunk, SparseVector

_SPEC_KEY = "kb_index_spec"  # collection metadata key holding the IndexSpec

T = TypeVar("T")

RETRY_ATTEMPTS = 3  # the request and two retries, like the OpenAI clients' max_retries=2
RETRY_FIRST_DELAY_S = 0.5  # then doubled for each further retry, with jitter
RETRY_MAX_DELAY_S = 8.0


def with_retries(
    request: Callable[[], T], budget_s: float, sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """`request()`, tried again after a transient failure (see `_retry_delay`) up to RETRY_ATTEMPTS times.

    A retry starts only while `budget_s` (KB_TIMEOUT) has not passed since the first try, so a dead
    server costs about one timeout, not three, while a refused connection or a restarting server
    (503) is tried again within a second or two. The last failure is raised as it is.
    """
    started, attempt = clock(), 1
    while True:
        try:
            return request()
        except Exception as exc:
            delay = _retry_delay(exc, attempt)
            if delay is None or attempt == RETRY_ATTEMPTS or clock() - started + delay > budget_s:
                raise
        sleep(delay)
        attempt += 1


def _retry_delay(exc: Exception, attempt: int) -> float | None:
    """Seconds to wait before trying again after `exc`, or None when trying again cannot help."""
    if isinstance(exc, ResourceExhaustedResponse):  # 429 with the server's Retry-After
        return min(float(exc.retry_after_s), RETRY_MAX_DELAY_S)
    transient = (
        isinstance(exc, ResponseHandlingException) and isinstance(exc.source, httpx.TransportError)
    ) or (isinstance(exc, UnexpectedResponse) and (exc.status_code == 429 or (exc.status_code or 0) >= 500))
    if not transient:  # a refusal (4xx) or an answer that cannot be read: the same again next time
        return None
    backoff = min(RETRY_FIRST_DELAY_S * 2 ** (attempt - 1), RETRY_MAX_DELAY_S)
    return backoff * random.uniform(0.75, 1.0)


@contextmanager
def _server_errors(url: str) -> Iterator[None]:
    try:
        yield
    except ResponseHandlingException as exc:
        raise IndexUnavailable(f"Qdrant at {url} is not reachable: {exc}") from exc
    except UnexpectedResponse as exc:
        raise IndexUnavailable(f"Qdrant at {url} answered {exc.status_code} {exc.reason_phrase}{_detail(exc)}") from exc
    except ResourceExhaustedResponse as exc:
        raise IndexUnavailable(f"Qdrant at {url} is overloaded: {exc}") from exc


def _detail(exc: UnexpectedResponse) -> str:
    """Qdrant's own error text ("Wrong input: ..."), when the answer carries one."""
    try:
        error = exc.structured().get("status", {}).get("error")
    except (ValueError, AttributeError):  # not JSON, or not Qdrant's shape (a proxy's page)
        return ""
    return f": {error}" if isinstance(error, str) else ""


SERVER_FILTERS: FilterVocabulary[models.Filter] = FilterVocabulary(
    any_of=lambda key, values: models.FieldCondition(key=key, match=models.MatchAny(any=values)),
    is_empty=lambda key: models.IsEmptyCondition(is_empty=models.PayloadField(key=key)),
    every=lambda conditions: models.Filter(must=conditions),
    either=lambda conditions: models.Filter(should=conditions),
)


def _document(doc_id: str) -> models.FieldCondition:
    return models.FieldCondition(key="doc_id", match=models.MatchValue(value=doc_id))


def _version(version: int) -> models.FieldCondition:
    return models.FieldCondition(key="version", match=models.MatchValue(value=version))


class ServerIndex:
    """One generation: a collection on a Qdrant server. Queries the collection itself, not the alias,
    so its spec always describes the vectors it searches."""

    def __init__(self, client: QdrantClient, collection: str, spec: IndexSpec, request: Callable[[Callable], Any]):
        self.spec = spec
        self.collection = collection
        self._client = client
        self._request = request  # the store's: retried with backoff, failures as IndexUnavailable

    def replace_document(self, doc_id: str, version: int, items: list[IndexedChunk]) -> None:
        points = self._points(items)
        keep = models.HasIdCondition(has_id=[p.id for p in points])
        stale = models.Filter(must=[_document(doc_id)], must_not=[keep])
        operations: list[Any] = [models.UpsertOperation(upsert=models.PointsList(points=points))] if points else []
        operations.append(models.DeleteOperation(delete=models.FilterSelector(filter=stale)))
        # one request: the new chunks in, the old ones out (sent twice, it leaves the same points)
        self._request(lambda: self._client.batch_update_points(self.collection, operations))

    def upsert(self, items: list[IndexedChunk]) -> None:
        points = self._points(items)
        if points:  # ids come from chunk ids: a retried request leaves the same points
            self._request(lambda: self._client.upsert(self.collection, points=points, wait=True))

    def delete_other_versions(self, doc_id: str, version: int) -> None:
        others = models.Filter(must=[_document(doc_id)], must_not=[_version(version)])
        self._request(lambda: self._client.delete(self.collection, models.FilterSelector(filter=others)))

    def delete_version(self, doc_id: str, version: int) -> None:
        this = models.Filter(must=[_document(doc_id), _version(version)])
        self._request(lambda: self._client.delete(self.collection, models.FilterSelector(filter=this)))

    def _points(self, items: list[IndexedChunk]) -> list[models.PointStruct]:
        return [
            models.PointStruct(
                id=base.point_id(i.chunk.chunk_id),
                vector=base.point_vectors(i, self.spec, models.SparseVector),
                payload=base.chunk_to_payload(i.chunk),
            )
            for i in items
        ]

    def delete_document(self, doc_id: str) -> None:
        everything = models.FilterSelector(filter=models.Filter(must=[_document(doc_id)]))
        self._request(lambda: self._client.delete(self.collection, everything))

    def set_groups(self, doc_id: str, groups: tuple[str, ...]) -> None:
        document = models.Filter(must=[_document(doc_id)])
        self._request(lambda: self._client.set_payload(self.collection, {"groups": list(groups)}, points=document))

    def search_ids(self, query: Query, limit: int, flt: SearchFilter | None = None) -> list[tuple[str, float]]:
        name = base.query_vector_name(self.spec, query, flt)
        if name is None:
            return []
        vector: models.SparseVector | list[float] = (
            models.SparseVector(indices=query.indices, values=query.values) if isinstance(query, SparseVector) else query
        )
        result = self._request(
            lambda: self._client.query_points(
                self.collection, query=vector, using=name, query_filter=base.search_filter(flt, SERVER_FILTERS),
                limit=limit,
                with_payload=False,
            )
        )
        return [(str(p.id), p.score) for p in result.points]

    def fetch(self, point_ids: list[str]) -> dict[str, Chunk]:
        if not point_ids:
            return {}
        records = self._request(lambda: self._client.retrieve(self.collection, point_ids, with_payload=True))
        return {str(r.id): base.chunk_from_payload(r.payload or {}) for r in records}

    def count(self) -> int:
        return self._request(lambda: self._client.count(self.collection, exact=True)).count

    @property
    def unoptimized(self) -> int:
        return 0  # the server runs its optimizers by itself

    def document_versions(self) -> dict[str, set[int]]:
        return base.versions_by_document(self._payloads(["doc_id", "version"]))

    def _payloads(self, keys: list[str]) -> Iterator[dict[str, Any]]:
        def page(offset: Any) -> tuple[list[Any], Any]:
            return self._request(lambda: self._client.scroll(
                self.collection, limit=SCROLL_PAGE, offset=offset, with_payload=keys, with_vectors=False
            ))

        return base.scroll_payloads(page)

    def close(self) -> None:
        """Nothing to release: the client belongs to the store."""


class ServerIndexStore:
    """Generations as collections f"{alias}-{n}"; the alias names the serving one.

    The IndexSpec is kept in each collection's metadata (create_collection(metadata=...)).
    """

    def __init__(self, client: QdrantClient, alias: str, url: str = "", budget_s: float = 30.0):
        self.client = client
        self.alias = alias
        self.url = url or "the configured URL"
        self.budget_s = budget_s  # how long retries of one request may go on (KB_TIMEOUT)

    def _request(self, request: Callable[[], T]) -> T:
        """One idempotent request: retried while that can help, then one clear IndexUnavailable."""
        with _server_errors(self.url):
            return with_retries(request, self.budget_s)

    def open_current(self) -> ServerIndex | None:
        name = self._request(self._serving)
        if name is None:
            return None
        metadata = self._request(lambda: self.client.get_collection(name)).config.metadata or {}
        if _SPEC_KEY not in metadata:
            raise IndexUnavailable(f"collection {name} behind alias {self.alias} was not created by kb")
        return ServerIndex(self.client, name, IndexSpec(**metadata[_SPEC_KEY]), self._request)

    def create(self, spec: IndexSpec) -> ServerIndex:
        pattern = re.compile(rf"^{re.escape(self.alias)}-(\d+)$")
        collections = self._request(self.client.get_collections).collections
        taken = [int(m.group(1)) for c in collections if (m := pattern.match(c.name))]
        name = f"{self.alias}-{max(taken, default=0) + 1}"
        dense = (
            {DENSE: models.VectorParams(size=spec.dense_dim, distance=models.Distance.COSINE)} if spec.dense_dim else {}
        )

        def create_collection() -> None:  # a retry after a lost reply finds the collection already made
            if not self.client.collection_exists(name):
                self.client.create_collection(
                    name,
                    vectors_config=dense,
                    sparse_vectors_config={SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)},
                    metadata={_SPEC_KEY: asdict(spec)},
                )

        self._request(create_collection)
        for key, schema in (
            ("doc_id", models.PayloadSchemaType.KEYWORD),
            ("groups", models.PayloadSchemaType.KEYWORD),
            ("version", models.PayloadSchemaType.INTEGER),
        ):
            self._request(lambda: self.client.create_payload_index(name, key, field_schema=schema))
        return ServerIndex(self.client, name, spec, self._request)

    def promote(self, index: ServerIndex) -> None:

        def switch() -> str | None:  # read the alias again on a retry: the switch may have happened
            previous = self._serving()
            actions: list[Any] = []
            if previous is not None:
                actions.append(models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=self.alias)))
            actions.append(
                models.CreateAliasOperation(
                    create_alias=models.CreateAlias(collection_name=index.collection, alias_name=self.alias)
                )
            )
            self.client.update_collection_aliases(change_aliases_operations=actions)  # one atomic switch
            return previous

        previous = self._request(switch)
        if previous is not None and previous != index.collection:
            self._request(lambda: self.client.delete_collection(previous))

    def discard(self, index: ServerIndex) -> None:
        self._request(lambda: self.client.delete_collection(index.collection))

    def optimize(self, index: ServerIndex) -> ServerIndex:
        return index  # the server builds its indexes in the background as points arrive

    def compact(self, index: ServerIndex) -> None:
        return None

    def describe(self) -> dict[str, Any]:
        return {
            "backend": "qdrant-server",
            "location": self.url,
            "collection": self._request(self._serving),
            "alias": self.alias,
        }

    def _serving(self) -> str | None:
        aliases = self.client.get_aliases().aliases
        return next((a.collection_name for a in aliases if a.alias_name == self.alias), None)


def connect(settings: Settings) -> ServerIndexStore:
    """The store on the server KB_QDRANT_URL names; no request is made until it is used."""
    client = QdrantClient(
        url=settings.qdrant_url,
        api_key=settings.qdrant_api_key.get_secret_value() or None,
        timeout=math.ceil(settings.timeout_s),
        check_compatibility=False,  # it would call the server while constructing, outside our error handling
    )
    return ServerIndexStore(client, settings.collection, url=settings.qdrant_url, budget_s=settings.timeout_s)
