"""Admin: re-index, delete documents, index statistics, component health, the feedback log and the audit log.

The page asks for the admin password or an admin's OIDC login before it shows anything, but that
only decides what is shown: each action is checked again by the library call that performs it
(`kb.auth.require_admin`), with the credentials of this session.
"""

from __future__ import annotations

import time
from datetime import date

import streamlit as st

from kb.audit import FeedbackFilter, audit_csv, audit_jsonl
from kb.auth import Actor, NotAuthorized, TooManyAttempts
from kb.highlight import markdown_literal
from kb.jobs import reindex_step
from kb.service import KnowledgeBase
from app_pages.common import (
    document_labels,
    ADMIN_PASSWORD_KEY, POLL_S, current_actor, knowledge_base, oidc_configured, password_client,
    safe_table, show_jobs,
)

REINDEX_KEY = "reindex_job"
DELETE_KEY = "delete_jobs"
HEALTH_KEY = "health"

HOW_TO_CONFIGURE = """Admin access is not configured, so this page is locked for everyone.

Configure one of:

- **A password**: set the environment variable `KB_ADMIN_PASSWORD`, or in `.streamlit/secrets.toml`:
  ```toml
  [admin]
  password = "a long random password"
  ```
- **Single sign-on**: configure Streamlit's OIDC login (an `[auth]` section in `.streamlit/secrets.toml`,
  see `.streamlit/secrets.toml.example`) and list the admins' e-mails in `KB_ADMIN_EMAILS` or
  `[admin] emails = ["you@example.com"]`.

Then restart the app."""


def sign_in(kb: KnowledgeBase, actor: Actor, oidc: bool) -> None:
    settings = kb.settings
    if oidc and settings.admin_email_set:
        if actor.unverified_email:
            st.warning(f"{markdown_literal(actor.unverified_email)} is not verified by your identity provider, "
                       "so it cannot unlock Admin.", icon=":material/block:")
        elif not actor.email:
            st.button("Log in with your company account", on_click=st.login, icon=":material/login:")
        else:
            st.warning(f"{actor.email} is not an admin.", icon=":material/block:")
    if settings.admin_password:
        with st.form("unlock"):
            given = st.text_input("Admin password", type="password")
            if st.form_submit_button("Unlock", icon=":material/lock_open:"):
                try:
                    right = kb.check_admin_password(given, password_client())
                except TooManyAttempts as exc:
                    st.error(str(exc), icon=":material/timer:")
                    return
                if right:
                    st.session_state[ADMIN_PASSWORD_KEY] = given
                    st.rerun()
                st.error("Wrong password.", icon=":material/error:")


def statistics(kb: KnowledgeBase) -> None:
    numbers = kb.stats()
    index = numbers["index"]
    first, second, third, fourth = st.columns(4)
    first.metric("Documents", numbers["documents"], help=f"Documents with a serving version; {numbers['failed_uploads']} "
                 "failed uploads are listed apart, on the Documents page")
    second.metric("Chunks", numbers["chunks"])
    third.metric("Index size", f"{index.get('size_bytes', 0) / 2**20:.1f} MB" if "size_bytes" in index else "n/a")
    fourth.metric("Pages", numbers["pages"])
    safe_table(
        [
            {"setting": "embedding model", "value": numbers["dense_model"] or "none (keyword search only)"},
            {"setting": "search", "value": numbers["search_mode"]},
            {"setting": "answers", "value": f"llm: {numbers['llm_model']}" if numbers["llm_model"] else "extractive"},
            {"setting": "index", "value": " ".join(str(v) for k, v in index.items() if k != "size_bytes")},
            {"setting": "last re-index", "value": numbers["last_reindex"] or "never"},
            {"setting": "chunks added since the index was optimized", "value": str(numbers["unoptimized_chunks"])},
            {"setting": "jobs waiting", "value": str(numbers["queued_jobs"])},
        ],
    )
    for warning in numbers["warnings"]:
        st.warning(warning, icon=":material/warning:")


def health(kb: KnowledgeBase) -> None:
    if HEALTH_KEY not in st.session_state or st.button("Check again", icon=":material/refresh:"):
        with st.spinner("Checking each component…"):
            st.session_state[HEALTH_KEY] = (time.strftime("%H:%M:%S"), kb.health())
    checked_at, components = st.session_state[HEALTH_KEY]
    st.caption(f"Checked at {checked_at}")
    safe_table([{"component": c.component, "status": c.status, "detail": c.detail} for c in components])


def folder_syncs(kb: KnowledgeBase, actor: Actor) -> None:
    """The last sync of each folder (`kb sync`, KB_SYNC_PATHS) and how it went."""
    reports = kb.last_syncs(actor)
    if not reports:
        st.caption("No folder synced yet: see `kb sync` and KB_SYNC_PATHS.")
        return
    safe_table([
        {"folder": r.root, "started": r.started_at, "seconds": r.seconds, "outcome": r.outcome,
         "result": r.summary(), "notes": "; ".join(r.notes)}
        for r in reports
    ])


def reindex(kb: KnowledgeBase, actor: Actor) -> None:
    st.write(
        "Rebuilds the whole index from the stored originals, in the background. Chat keeps answering "
        "from the current index until the new one is complete; if the rebuild fails, the current one "
        "stays. Re-index after changing the embedding model (`KB_EMBEDDING`) or the chunk size "
        "(`KB_CHUNK_WORDS`) and restarting the app."
    )
    running = kb.running_reindex()
    if st.button("Re-index now", type="primary", disabled=running is not None, icon=":material/sync:"):
        try:
            st.session_state[REINDEX_KEY] = kb.submit_reindex(actor)
            st.rerun()
        except NotAuthorized as exc:
            st.error(str(exc))
    job_id = running.id if running else st.session_state.get(REINDEX_KEY)
    if job_id is not None:
        reindex_progress(kb, job_id)


def reindex_progress(kb: KnowledgeBase, job_id: int) -> None:
    def status() -> bool:
        (job,) = kb.jobs([job_id])
        if job.status != "done":
            done, total = kb.job_progress(job_id) or (0, 0)
            label = f"Re-indexing: {reindex_step(done, total)}" if total else "Re-index waiting for the worker…"
            st.progress(done / total if total else 0.0, text=label)
            return False
        reason = markdown_literal(job.message)  # it may quote an error about a document
        if job.outcome == "ok":
            st.success(f"Re-index complete: {reason}", icon=":material/check_circle:")
        else:
            st.error(f"Re-index failed; the previous index is still serving. Reason: {reason}",
                     icon=":material/error:")
        return True

    (job,) = kb.jobs([job_id])
    if job.status == "done":
        status()
        return

    @st.fragment(run_every=POLL_S)
    def live() -> None:
        if status():
            st.rerun()

    live()


def delete(kb: KnowledgeBase, actor: Actor) -> None:
    """Delete several documents at once. The choice stays until they are deleted: a press without the
    confirmation box ticked, or with nothing chosen, says what is missing and changes nothing."""
    st.page_link("app_pages/documents.py", label="One document at a time, with its versions and passages: the Documents page",
                 icon=":material/description:")
    documents = kb.documents(actor=actor)
    names = document_labels(documents)
    with st.form("delete"):
        chosen = st.multiselect("Documents to delete", options=list(names), format_func=names.__getitem__,
                                key="delete_chosen")
        sure = st.checkbox("Delete them from the index, the catalog and the stored originals", key="delete_sure")
        pressed = st.form_submit_button("Delete", icon=":material/delete:")
    if pressed:
        if not chosen:
            st.warning("Choose a document to delete: nothing was deleted.", icon=":material/info:")
        elif not sure:
            st.warning("Tick the box to confirm: nothing was deleted yet.", icon=":material/info:")
        else:
            ids, refused = [], []
            for doc_id in chosen:
                try:
                    ids.append(kb.submit_delete(doc_id, actor))
                except NotAuthorized as exc:
                    refused.append(str(exc))
            st.session_state[DELETE_KEY] = st.session_state.get(DELETE_KEY, []) + ids
            for reason in refused:
                st.error(reason, icon=":material/block:")
            if ids and not refused:  # all queued: empty the form for the next choice
                del st.session_state["delete_chosen"], st.session_state["delete_sure"]
                st.rerun()
    if st.session_state.get(DELETE_KEY):
        show_jobs(kb, st.session_state[DELETE_KEY], key="deletes")


def visibility(kb: KnowledgeBase, actor: Actor) -> None:
    """Change who sees one document: applies at once to all its versions, in every read."""
    documents = kb.documents(actor=actor)
    if not documents:
        return
    labels = {d.doc_id: f"{d.name} ({', '.join(d.groups) or 'everyone'})" for d in documents}
    with st.form("visibility"):
        chosen = st.selectbox("Document", options=list(labels), format_func=labels.__getitem__)
        typed = st.text_input("Visible to these groups", help="Comma-separated; empty means everyone.")
        if st.form_submit_button("Change who sees it", icon=":material/group:") and chosen:
            try:
                kb.set_groups(chosen, [g.strip() for g in typed.split(",") if g.strip()], actor)
                st.success("Changed: every version of the document is now shown only to those who may see it.")
            except NotAuthorized as exc:
                st.error(str(exc))


def feedback_log(kb: KnowledgeBase, actor: Actor) -> None:
    rows = kb.feedback_log(actor)
    ups = sum(r.rating == 1 for r in rows)
    st.caption(f"{len(rows)} ratings: {ups} 👍, {len(rows) - ups} 👎")
    st.download_button(
        "Export as CSV", data=lambda: kb.feedback_csv(actor), file_name="kb-feedback.csv", mime="text/csv",
        on_click="ignore", icon=":material/download:", disabled=not rows,
    )
    safe_table(
        [
            {"time": r.created_at, "user": r.user, "rating": "👍" if r.rating == 1 else "👎", "comment": r.comment,
             "question": r.question, "searched for": r.query, "answer": r.answer, "cited": " ".join(r.chunk_ids)}
            for r in rows
        ],
    )


FEEDBACK_CHOICES: dict[FeedbackFilter, str] = {
    "any": "any", "rated": "rated", "up": "👍", "down": "👎", "unrated": "not rated",
}
AUDIT_ROWS = 500  # drawn in the table; the exports hold every matching answer


def audit_log(kb: KnowledgeBase, actor: Actor) -> None:
    """Every answer shown, as it was shown: filter by time, user, cited document, feedback and words; export."""
    everything = kb.audit(actor)
    users = sorted({r.user for r in everything})
    documents = {c.doc_id: c.source for r in everything for c in r.citations}
    when, who, which, rated, words = st.columns([2, 2, 3, 1, 2])
    since = when.date_input("From", value=None, max_value=date.today(), key="audit-since", format="YYYY-MM-DD")
    user = who.selectbox("User", users, index=None, placeholder="everyone", key="audit-user")
    doc_id = which.selectbox("Cites", list(documents), index=None, placeholder="any document",
                             format_func=documents.__getitem__, key="audit-doc")
    feedback = rated.selectbox("Feedback", list(FEEDBACK_CHOICES), format_func=FEEDBACK_CHOICES.__getitem__,
                               key="audit-feedback")
    text = words.text_input("Question or answer holds", key="audit-text", max_chars=200)
    records = kb.audit(actor, since.isoformat() if since else "", user, doc_id=doc_id, feedback=feedback, text=text)
    st.caption(f"{len(records)} of {len(everything)} answers" + (f"; the newest {AUDIT_ROWS} are shown" if len(records) > AUDIT_ROWS else ""))
    csv_button, jsonl_button = st.columns(2)
    csv_button.download_button(
        "Export as CSV", data=lambda: audit_csv(records), file_name="kb-audit.csv", mime="text/csv",
        on_click="ignore", icon=":material/download:", disabled=not records, key="audit-csv",
    )
    jsonl_button.download_button(
        "Export as JSONL", data=lambda: audit_jsonl(records), file_name="kb-audit.jsonl",
        mime="application/jsonl", on_click="ignore", icon=":material/download:", disabled=not records,
        key="audit-jsonl",
    )
    safe_table(
        [
            {"answer id": r.id, "time (UTC)": r.time[:19].replace("T", " "), "user": r.user, "question": r.question,
             "searched for": r.query, "answer": r.answer, "mode": r.mode,
             "cites": "; ".join(f"[{c.n}] {c.source} v{c.version}" + (f" p. {c.page}" if c.page else "")
                                for c in r.citations),
             "unsupported": sum(not c.get("supported") for c in r.claims),
             "feedback": {1: "👍", -1: "👎"}.get(r.rating or 0, "") + (f" {r.comment}" if r.comment else ""),
             "link": f"?answer={r.id}"}
            for r in records[:AUDIT_ROWS]
        ],
    )


def main() -> None:
    kb = knowledge_base()
    settings = kb.settings
    st.title("Admin")
    oidc = oidc_configured()
    if not settings.admin_password and not (oidc and settings.admin_email_set):
        st.info(HOW_TO_CONFIGURE, icon=":material/lock:")
        return
    actor = current_actor()
    if not kb.is_admin(actor):
        sign_in(kb, actor, oidc)
        return
    if actor.password and st.sidebar.button("Lock admin", icon=":material/lock:"):
        del st.session_state[ADMIN_PASSWORD_KEY]
        st.rerun()

    overview, index_tab, documents_tab, feedback_tab, audit_tab = st.tabs(
        ["Overview", "Re-index", "Documents", "Feedback", "Audit log"]
    )
    with overview:
        statistics(kb)
        st.subheader("Health")
        health(kb)
        st.subheader("Folder sync")
        folder_syncs(kb, actor)
    with index_tab:
        reindex(kb, actor)
    with documents_tab:
        delete(kb, actor)
        st.subheader("Who sees a document")
        visibility(kb, actor)
    with feedback_tab:
        feedback_log(kb, actor)
    with audit_tab:
        audit_log(kb, actor)


main()
