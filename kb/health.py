"""Is each component working? Index, catalog, embedding model and language model, each with a reason.

A check never raises: a component that fails is reported "down" with one line saying why, so the
Admin page can show every component even when several are broken.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Callable, Literal
from urllib.parse import urlsplit

from kb.answering import LLM_ERRORS, build_llm, describe_llm_error

if TYPE_CHECKING:
    from kb.service import KnowledgeBase

HEALTH_TIMEOUT_S = 5.0  # a health page should not wait the full KB_TIMEOUT for a dead endpoint

Status = Literal["ok", "off", "degraded", "down"]


@dataclass(frozen=True)
class ComponentHealth:
    component: str
    status: Status  # off: not configured (a supported choice, not a fault)
    detail: str


def check(kb: KnowledgeBase) -> list[ComponentHealth]:
    return [
        _guard("index", lambda: _index(kb)),
        _guard("catalog", lambda: _catalog(kb)),
        _guard("embedding model", lambda: _embedding(kb)),
        _guard("LLM endpoint", lambda: _llm(kb)),
    ]


def _guard(component: str, probe: Callable[[], tuple[Status, str]]) -> ComponentHealth:
    try:
        status, detail = probe()
    except LLM_ERRORS as exc:
        status, detail = "down", describe_llm_error(exc)
    except Exception as exc:  # the point of a health check: report, never fail
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        status, detail = "down", f"{type(exc).__name__}: {first_line}".rstrip(": ")
    return ComponentHealth(component, status, detail)


def _index(kb: KnowledgeBase) -> tuple[Status, str]:
    count = kb.index.count()
    where = kb.index_store.describe() if kb.index_store else {}
    backend = " ".join(str(where[key]) for key in ("backend", "generation", "collection") if where.get(key))
    return "ok", f"{backend}: {count} chunks".lstrip(": ")


def _catalog(kb: KnowledgeBase) -> tuple[Status, str]:
    documents = len(kb.catalog.documents())
    waiting = kb.catalog.queued_count()
    return "ok", f"{documents} documents, {waiting} jobs waiting ({kb.catalog.path})"


def _embedding(kb: KnowledgeBase) -> tuple[Status, str]:
    if kb.dense is None:
        if kb.settings.embedding:
            reason = next((w for w in kb.warnings if w.startswith("dense embeddings off")), "not loaded")
            return "down", reason
        return "off", "no dense model configured (KB_EMBEDDING): keyword search only"
    vector = kb.dense.embed_query("health check")
    if kb.search_mode != "hybrid":
        return "degraded", (
            f"{kb.dense.model_id} works, but the index was built with {kb.index.spec.dense_model or 'none'}: "
            "keyword search only until a re-index"
        )
    return "ok", f"{kb.dense.model_id} ({len(vector)} dimensions)"


def _llm(kb: KnowledgeBase) -> tuple[Status, str]:
    settings = kb.settings
    if not settings.llm_enabled:
        return "off", "no OPENAI_API_KEY: extractive answers"
    llm = build_llm(replace(settings, timeout_s=min(settings.timeout_s, HEALTH_TIMEOUT_S)), max_retries=0)
    llm.invoke("Reply with the word OK.")
    return "ok", f"{settings.llm_model} at {_host(settings.openai_base_url) or 'OpenAI'} answered"


def _host(url: str) -> str:
    """The endpoint without any user:password@ part, which must never reach a page."""
    parts = urlsplit(url)
    if not parts.hostname:
        return ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}{parts.path}"
