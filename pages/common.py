"""What every page shares: this process's one knowledge base, who the user is, and job progress.

The knowledge base (index, catalog, models) and its queue worker live in `st.cache_resource`, so
all sessions share them and a job keeps running when its page is left; per-user state lives in
`st.session_state`. The worker thread never calls `st.*`: pages poll the catalog with fragments.
"""

from __future__ import annotations

import contextvars
import html
import math
from dataclasses import dataclass

import streamlit as st

from kb.auth import ANONYMOUS, Actor, actor_for
from kb.config import ConfigError, load_settings
from kb.index import IndexUnavailable
from kb.jobs import Worker
from kb.records import Job
from kb.service import IndexBusy, KnowledgeBase

# True while streamlit_app.main() runs the current page through st.navigation.
IN_APP = contextvars.ContextVar("kb_in_app", default=False)
POLL_S = 1.0  # how often a page showing running jobs looks at the catalog
ADMIN_PASSWORD_KEY = "admin_password"  # session_state: the password this session unlocked Admin with


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
    worker = Worker(kb)
    worker.start()
    return Running(kb, worker)


def enter_through_app() -> None:
    """Make sure this page runs inside the app's navigation, page frame and styles.

    Until a process has run the entry script once, Streamlit treats a `pages/` folder the old way:
    the first visit after a start that opens a page's own address (/upload) runs that file alone,
    with a navigation listing every file in the folder. Run the entry script instead (it calls
    st.navigation, which ends the old mode for good, and runs this page inside it), then stop.
    """
    if IN_APP.get():
        return
    import streamlit_app

    streamlit_app.main()
    st.stop()


def knowledge_base() -> KnowledgeBase:
    """The process-wide knowledge base; if it cannot start, the page says why and stops."""
    try:
        return _start().kb
    except (ConfigError, IndexBusy, IndexUnavailable, OSError) as exc:
        st.error(f"The knowledge base cannot start: {exc}", icon=":material/error:")
        st.stop()
        raise  # unreachable: st.stop() ends the run


def oidc_configured() -> bool:
    """Whether Streamlit's OIDC login (`st.login`) has an [auth] section in secrets.toml."""
    try:
        return "auth" in st.secrets
    except Exception:  # no secrets file at all
        return False


def current_actor() -> Actor:
    """The session's user: the e-mail of an OIDC login (with the groups the login carries, else the
    configured ones), plus the admin password if one was entered."""
    email, identity_groups = "", None
    if oidc_configured() and st.user.get("is_logged_in"):
        email = str(st.user.get("email") or "")
        claim = st.user.get("groups")
        if isinstance(claim, (list, tuple)):
            identity_groups = tuple(str(group) for group in claim)
    password = st.session_state.get(ADMIN_PASSWORD_KEY, "")
    return actor_for(email or ANONYMOUS, knowledge_base().settings, identity_groups, password=password)


def note(text: str) -> None:
    """A small grey line of plain text (no Markdown: it may hold a question, a name or an address)."""
    st.html(f'<p class="kb-note">{html.escape(text)}</p>')


def max_upload_mb(kb: KnowledgeBase) -> int:
    return max(1, math.ceil(kb.settings.max_file_mb))


# --- jobs -------------------------------------------------------------------------------------

_STATUS = {"queued": "waiting", "running": "working…"}


def job_rows(jobs: list[Job]) -> list[dict[str, str]]:
    """One row per job for a table: the file, where it is, and the one-line outcome."""
    return [
        {"file": job.name or job.kind, "status": _STATUS.get(job.status, job.outcome), "details": job.message}
        for job in jobs
    ]


def show_jobs(kb: KnowledgeBase, job_ids: list[int], key: str) -> None:
    """A table of the jobs that updates live until they are all done, then refreshes the page."""

    def table() -> bool:
        jobs = kb.catalog.jobs(job_ids)
        finished = sum(job.status == "done" for job in jobs)
        failed = sum(job.outcome == "failed" for job in jobs)
        summary = f"{finished} of {len(jobs)} done" + (f", {failed} failed" if failed else "")
        st.html(f'<p class="kb-jobs-summary" data-key="{key}">{summary}</p>')
        st.dataframe(job_rows(jobs), hide_index=True, width="stretch",
                     column_config={"details": st.column_config.TextColumn(width="large")})
        return finished == len(jobs)

    if all(job.status == "done" for job in kb.catalog.jobs(job_ids)):
        table()
        return

    @st.fragment(run_every=POLL_S)
    def live() -> None:
        if table():
            st.rerun()  # everything finished: refresh the whole page (document list, filters)

    live()
