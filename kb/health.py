"""Is each component working? Index, catalog, embedding model and language model, each with a reason.

A check never raises: a component that fails is reported "down" with one line saying why, so the
Admin page can show every component even when several are broken.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal
from urllib.parse import urlsplit

from kb.catalog import SqliteCatalog
from kb.config import Settings
from kb.errors import first_line
from kb.serving import ServingIndex

HEALTH_TIMEOUT_S = 5.0  # a health page should not wait the full KB_TIMEOUT for a dead endpoint

Status = Literal["ok", "off", "degraded", "down"]


@dataclass(frozen=True)
class ComponentHealth:
    component: str
    status: Status  # off: not configured (a supported choice, not a fault)
    detail: str


def check(serving: ServingIndex, catalog: SqliteCatalog, settings: Settings) -> list[ComponentHealth]:
    return [
        _guard("index", lambda: _index(serving)),
        _guard("catalog", lambda: _catalog(catalog)),
        _guard("embedding model", lambda: _embedding(serving, settings)),
        _guard("LLM endpoint", lambda: _llm(settings)),
    ]


def _guard(component: str, probe: Callable[[], tuple[Status, str]]) -> ComponentHealth:
    try:
        status, detail = probe()
    except Exception as exc:  # the point of a health check: report, never fail
        named = type(exc).__name__
        status, detail = "down", f"{named}: {first_line(exc)}" if str(exc).strip() else named
    return ComponentHealth(component, status, detail)


def _index(serving: ServingIndex) -> tuple[Status, str]:
    count = serving.index.count()
    where = serving.describe()
    backend = " ".join(str(where[key]) for key in ("backend", "generation", "collection") if where.get(key))
    return "ok", f"{backend}: {count} chunks".lstrip(": ")


def _catalog(catalog: SqliteCatalog) -> tuple[Status, str]:
    documents = len(catalog.served_documents())  # the one definition of a document (kb.catalog.documents)
    waiting = catalog.queued_count()
    return "ok", f"{documents} documents, {waiting} jobs waiting ({catalog.path})"


def _embedding(serving: ServingIndex, settings: Settings) -> tuple[Status, str]:
    dense = serving.dense
    if dense is None:
        if settings.embedding:
            problem = serving.dense_problem
            return "down", f"dense embeddings off: {problem}; using keyword search only" if problem else "not loaded"
        return "off", "no dense model configured (KB_EMBEDDING): keyword search only"
    vector = dense.embed_query("health check")
    if serving.mode != "hybrid":
        return "degraded", (
            f"{dense.model_id} works, but the index was built with {serving.index.spec.dense_model or 'none'}: "
            "keyword search only until a re-index"
        )
    return "ok", f"{dense.model_id} ({len(vector)} dimensions)"


def _llm(settings: Settings) -> tuple[Status, str]:
    if not settings.llm_enabled:
        return "off", "no OPENAI_API_KEY or OPENAI_BASE_URL: extractive answers"
    from kb.answering.llm import LLM_ERRORS, build_llm, describe_llm_error  # only with a model configured

    llm = build_llm(settings.replace(timeout_s=min(settings.timeout_s, HEALTH_TIMEOUT_S)), max_retries=0)
    try:
        llm.invoke("Reply with the word OK.")
    except LLM_ERRORS as exc:
        return "down", describe_llm_error(exc)
    return "ok", f"{settings.llm_model} at {_host(settings.openai_base_url) or 'OpenAI'} answered"


def _host(url: str) -> str:
    """The endpoint without any user:password@ part, which must never reach a page."""
    parts = urlsplit(url)
    if not parts.hostname:
        return ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}{parts.path}"
