"""What every page shares: this process's one knowledge base, who the user is, and job progress.

The knowledge base (index, catalog, models) and its queue worker live in `st.cache_resource`, so
all sessions share them and a job keeps running when its page is left; per-user state lives in
`st.session_state`. The worker thread never calls `st.*`: pages poll the catalog with fragments.
"""

from __future__ import annotations

from collections import Counter
import html
import math
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import streamlit as st

from kb.auth import Actor, Client, actor_from_login
from kb.config import load_settings
from kb.errors import KbError, first_line
from kb.feedback import spreadsheet_safe
from kb.jobs import Worker
from kb.records import Document, Job
from kb.service import KnowledgeBase
from kb.uploads import about_left

POLL_S = 1.0  # how often a page showing running jobs looks at the catalog
ADMIN_PASSWORD_KEY = "admin_password"  # session_state: the password this session unlocked Admin with
CLIENT_KEY = "password_client"  # session_state: the random token the password guard knows this session by


@dataclass
class Running:
    kb: KnowledgeBase
    worker: Worker


def _shut_down(running: Running) -> None:
    running.worker.stop()
    running.kb.close()


@st.cache_resource(show_spinner="Opening the knowledge base…", on_release=_shut_down)
def _start() -> Running:
    kb = KnowledgeBase(load_settings())
    try:
        if not kb.take_queue():  # another process (`kb worker`) works the queue: only read here
            kb.open_index()
    except BaseException:
        kb.close()
        raise
    worker = Worker(kb.queue)
    worker.start()
    return Running(kb, worker)


def knowledge_base() -> KnowledgeBase:
    """The process-wide knowledge base; if it cannot start, the page says why and stops."""
    try:
        return _start().kb
    except (KbError, OSError) as exc:
        st.error(f"The knowledge base cannot start: {first_line(exc)}", icon=":material/error:")
        st.stop()
        raise  # unreachable: st.stop() ends the run


def oidc_configured() -> bool:
    """Whether Streamlit's OIDC login (`st.login`) has an [auth] section in secrets.toml."""
    try:
        return "auth" in st.secrets
    except Exception:  # no secrets file at all
        return False


def current_actor() -> Actor:
    """The session's user: an OIDC login (`kb.auth.actor_from_login` decides what its claims are
    worth), plus the admin password if one was entered."""
    claims = st.user if oidc_configured() else None
    password = st.session_state.get(ADMIN_PASSWORD_KEY, "")
    return actor_from_login(claims, knowledge_base().settings, password=password)


def password_client() -> Client:
    """Who types the admin password, for `kb.auth.PasswordGuard`: a token this server drew for the
    session, and the connection's address as Streamlit's web server resolved it (it follows
    X-Forwarded-For only from a trusted proxy, see `kb.auth.Client`). X-Forwarded-For is never read
    here: a client that reaches the app directly can write anything into it."""
    token = st.session_state.get(CLIENT_KEY)
    if not token:
        token = st.session_state[CLIENT_KEY] = secrets.token_urlsafe(16)
    address = st.context.ip_address
    return Client(session=token, address=address if isinstance(address, str) else None)  # AppTest: a mock


def safe_table(rows: Iterable[Mapping[str, Any]], **options: Any) -> None:
    """`st.dataframe` for rows that hold text from users or documents: every cell goes through
    `kb.feedback.spreadsheet_safe`, since the table's toolbar can download it as CSV and its cells
    can be copied into a spreadsheet. Every table of the app is shown through here."""
    safe = [{column: spreadsheet_safe(value) for column, value in row.items()} for row in rows]
    st.dataframe(safe, hide_index=True, width="stretch", **options)


def note(text: str) -> None:
    """A small grey line of plain text (no Markdown: it may hold a question, a name or an address)."""
    st.html(f'<p class="kb-note">{html.escape(text)}</p>')


def document_labels(documents: list[Document]) -> dict[str, str]:
    """doc_id -> the name to show in a picker; documents that share a name say whose they are."""
    counts = Counter(d.name for d in documents)
    return {
        d.doc_id: d.name if counts[d.name] == 1 else f"{d.name} ({d.owner or 'admin'}, {', '.join(d.groups) or 'everyone'})"
        for d in documents
    }


def status_label(doc: Document) -> str:
    """A document's status for a table, with its colour: it serves, or it serves but its last upload failed."""
    return "🟠 serving, last upload failed" if doc.error else "🟢 serving"


def pages_label(pages: int | None) -> str:
    return "–" if pages is None else str(pages)


def when(stamp: str) -> str:
    """An ISO time from the catalog as "2026-12-03 14:31" (UTC)."""
    return stamp[:16].replace("T", " ")


def document_rows(documents: list[Document]) -> list[dict[str, Any]]:
    """One row per document for a table (the Upload and Documents pages show the same columns)."""
    return [
        {
            "document": d.name,
            "status": status_label(d),
            "version": d.version,
            "pages": pages_label(d.pages),
            "chunks": d.chunks,
            "owner": d.owner,
            "visible to": ", ".join(d.groups) or "everyone",
            "uploader": d.uploader,
            "updated (UTC)": when(d.updated_at),
            "last error": d.error,
        }
        for d in documents
    ]


DOCUMENT_COLUMNS = {  # the last error in full, wrapped in a wide column
    "last error": st.column_config.TextColumn(width="large"),
    "status": st.column_config.TextColumn(width="medium"),
}


def max_upload_mb(kb: KnowledgeBase) -> int:
    return max(1, math.ceil(kb.settings.max_file_mb))


# --- jobs -------------------------------------------------------------------------------------

_STATUS = {"queued": "waiting", "running": "working…"}


def job_status(job: Job) -> str:
    """Where a job is, in a word: waiting, working…, stopping… (cancelled while running), or its outcome."""
    if job.status == "running" and job.cancel_requested:
        return "stopping…"
    return _STATUS.get(job.status, job.outcome)


def job_rows(jobs: list[Job]) -> list[dict[str, str]]:
    """One row per job for a table: the file, where it is, and the one-line outcome."""
    return [{"file": job.name or job.kind, "status": job_status(job), "details": job.message} for job in jobs]


def jobs_summary(jobs: list[Job], eta_s: float | None = None) -> str:
    """"3 of 10 done, 1 failed, about 2 min left"."""
    finished = sum(job.status == "done" for job in jobs)
    failed = sum(job.outcome == "failed" for job in jobs)
    cancelled = sum(job.outcome == "cancelled" for job in jobs)
    return (
        f"{finished} of {len(jobs)} done" + (f", {failed} failed" if failed else "")
        + (f", {cancelled} cancelled" if cancelled else "") + (f", {about_left(eta_s)}" if eta_s is not None else "")
    )


def jobs_table(jobs: list[Job], key: str, eta_s: float | None = None) -> None:
    st.html(f'<p class="kb-jobs-summary" data-key="{html.escape(key)}">{html.escape(jobs_summary(jobs, eta_s))}</p>')
    safe_table(job_rows(jobs), column_config={"details": st.column_config.TextColumn(width="large")})


def refreshing(pending: bool, draw: Callable[[], bool]) -> None:
    """Draw a part of the page, and while work is `pending` draw it again every POLL_S (a fragment);
    once `draw` returns False (nothing pending any more) the whole page is drawn again, so its other
    parts (lists, filters, buttons) catch up."""
    if not pending:
        draw()
        return

    @st.fragment(run_every=POLL_S)
    def live() -> None:
        if not draw():
            st.rerun()

    live()


def show_jobs(kb: KnowledgeBase, job_ids: list[int], key: str) -> None:
    """A table of the jobs that updates live until they are all done, then refreshes the page."""

    def table() -> bool:
        jobs = kb.jobs(job_ids)
        jobs_table(jobs, key)
        return any(job.status != "done" for job in jobs)

    refreshing(any(job.status != "done" for job in kb.jobs(job_ids)), table)
