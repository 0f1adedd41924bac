"""Documents: find a document, look into it (versions, passages, who sees it) and act on it; and the
uploads that failed, to retry or dismiss.

Everything listed comes from `KnowledgeBase.documents(actor=...)` and `failed_attempts(actor=...)`,
which apply the access rules (kb.access): nobody sees, counts or downloads what they may not see.
The controls that change a document are shown only to those who may change it (`may_change`), and
each action is checked again by the library call that performs it.
"""

from __future__ import annotations

from datetime import date

import streamlit as st

from kb.auth import Actor
from kb.errors import KbError
from kb.highlight import markdown_literal
from kb.records import Document, DocumentFilter, FailedAttempt
from kb.service import KnowledgeBase
from app_pages.common import (
    DOCUMENT_COLUMNS, current_actor, document_labels, document_rows, knowledge_base, note, pages_label, safe_table, show_jobs, when,
)

JOBS_KEY = "document_jobs"  # session_state: ids of the jobs this page queued (delete, re-ingest, retry)
CHOSEN_KEY = "document_chosen"
PREVIEW_PASSAGES = 5
EVERYONE = "everyone (no groups)"
ANY_STATUS, SERVING, WARNED = "any", "serving", "serving, last upload failed"
_VERSION_STATUS = {"ok": "🟢 serving", "superseded": "⚪ superseded", "failed": "🔴 failed", "indexing": "🔵 indexing"}


def filters(documents: list[Document]) -> DocumentFilter:
    """The search and filter controls, over the documents the actor sees (so a choice never names others)."""
    groups = sorted({g for d in documents for g in d.groups})
    people = sorted({p for d in documents for p in (d.uploader, d.owner) if p})
    first, second, third = st.columns(3)
    name = first.text_input("Name contains", key="filter_name")
    status = second.selectbox("Status", [ANY_STATUS, SERVING, WARNED], key="filter_status")
    audience = third.multiselect("Visible to", [EVERYONE, *groups], key="filter_groups", placeholder="Any group")
    fourth, fifth = st.columns([2, 1])
    chosen_people = fourth.multiselect("Uploaded or owned by", people, key="filter_people", placeholder="Anyone")
    days = fifth.date_input("Last changed between", value=(), key="filter_dates", format="YYYY-MM-DD")
    picked = [d for d in (days if isinstance(days, (tuple, list)) else [days]) if isinstance(d, date)]
    return DocumentFilter(
        name=name.strip(),
        failed_last=None if status == ANY_STATUS else status == WARNED,
        groups=tuple(g for g in audience if g != EVERYONE),
        for_everyone=EVERYONE in audience,
        people=tuple(chosen_people),
        since=picked[0].isoformat() if picked else "",
        until=picked[-1].isoformat() if picked else "",
    )


def version_rows(kb: KnowledgeBase, actor: Actor, doc: Document) -> list[dict]:
    return [
        {
            "version": v.version,
            "status": _VERSION_STATUS.get(v.status, v.status),
            "added (UTC)": when(v.created_at),
            "uploader": v.uploader,
            "pages": pages_label(v.pages),
            "chunks": v.chunks,
            "size (KB)": round(v.size / 1024, 1),
            "original": "kept" if v.kept else "no longer kept",
            "error": v.error,
        }
        for v in kb.versions(doc.doc_id, actor=actor)
    ]


def queued(job_id: int, text: str) -> None:
    """Remember a job this page queued (its progress is shown at the top) and say so; `text` is plain."""
    st.session_state.setdefault(JOBS_KEY, []).append(job_id)
    st.success(markdown_literal(text), icon=":material/schedule:")


def refused(exc: KbError) -> None:
    st.error(markdown_literal(str(exc)), icon=":material/block:")


def detail(kb: KnowledgeBase, actor: Actor, doc: Document) -> None:
    """One document: what it holds, its versions (each kept one downloadable), a preview of its passages,
    and, for those who may change it, who sees it, re-ingest and delete."""
    st.subheader(markdown_literal(doc.name))
    note(f"Owner {doc.owner or 'an admin'} · visible to {', '.join(doc.groups) or 'everyone'} · "
         f"first added {when(doc.created_at)} UTC · id {doc.doc_id}")
    first, second, third, fourth = st.columns(4)
    first.metric("Serving version", doc.version)
    second.metric("Pages", pages_label(doc.pages))
    third.metric("Chunks", doc.chunks)
    fourth.metric("Size", f"{doc.size / 1024:.1f} KB")
    if doc.error:
        st.warning(f"The last upload of this document failed; version {doc.version} is still serving. "
                   f"Reason: {markdown_literal(doc.error)}", icon=":material/warning:")

    st.markdown("**Versions**")
    rows = version_rows(kb, actor, doc)
    safe_table(rows, column_config={"error": st.column_config.TextColumn(width="large")})
    kept = [row["version"] for row in rows if row["original"] == "kept"]
    if kept:
        left, right = st.columns([1, 2], vertical_alignment="bottom")
        version = left.selectbox("Version to download", kept, key=f"download-version-{doc.doc_id}")
        original = kb.version_original(doc.doc_id, version, actor=actor)
        if original is not None:
            name, read = original
            right.download_button(
                f"Download version {version}", data=read, file_name=name.rsplit("/", 1)[-1],
                mime="application/octet-stream", on_click="ignore", icon=":material/download:",
                key=f"download-{doc.doc_id}-{version}",
            )
    else:
        note("No original of this document is kept any more.")

    with st.expander(f"First {PREVIEW_PASSAGES} passages of version {doc.version}"):
        passages = kb.passages(doc.doc_id, actor=actor, limit=PREVIEW_PASSAGES)
        if not passages:
            note("No passages to show (the index does not hold them right now).")
        for chunk in passages:
            where = " · ".join(p for p in (f"passage {chunk.seq + 1}", chunk.pages_label, chunk.section or "") if p)
            note(where)
            st.text(chunk.text)  # plain text: never rendered as Markdown or HTML

    if not kb.may_change(doc.doc_id, actor=actor):
        note(f"Only {doc.owner or 'an admin'} or an admin may change, re-ingest or delete this document.")
        return
    groups_form(kb, actor, doc)
    reingest(kb, actor, doc)
    delete(kb, actor, doc)


def groups_form(kb: KnowledgeBase, actor: Actor, doc: Document) -> None:
    st.markdown("**Who sees it**")
    with st.form(f"groups-{doc.doc_id}"):
        typed = st.text_input(
            "Visible to these groups", value=", ".join(doc.groups),
            help="Comma-separated; empty means everyone. Applies at once to every version.",
        )
        if st.form_submit_button("Change who sees it", icon=":material/group:"):
            groups = [g.strip() for g in typed.split(",") if g.strip()]
            try:
                kb.set_groups(doc.doc_id, groups, actor)
                st.success(markdown_literal(f"Now visible to {', '.join(groups) or 'everyone'} (and admins), in every version."),
                           icon=":material/check_circle:")
            except KbError as exc:
                refused(exc)


def reingest(kb: KnowledgeBase, actor: Actor, doc: Document) -> None:
    st.markdown("**Re-ingest**")
    if st.button(f"Re-ingest version {doc.version}'s original", key=f"reingest-{doc.doc_id}", icon=":material/replay:",
                 help="Parses and indexes the kept original again, as the next version (after a parser update)."):
        try:
            queued(kb.reingest(doc.doc_id, actor), f"Re-ingest of {doc.name} queued: it becomes version "
                   f"{doc.version + 1} once it is indexed.")
        except KbError as exc:
            refused(exc)


def delete(kb: KnowledgeBase, actor: Actor, doc: Document) -> None:
    st.markdown("**Delete**")
    note("Deleting removes every version from the index, the catalog and the stored originals. It cannot be undone.")
    with st.form(f"delete-{doc.doc_id}"):
        typed = st.text_input(f"Type the document's name ({markdown_literal(doc.name)}) to confirm")
        if st.form_submit_button("Delete this document", icon=":material/delete:"):
            if not typed.strip():
                st.warning("Type the document's name to confirm: nothing was deleted.", icon=":material/info:")
            elif typed.strip() != doc.name:
                st.warning(markdown_literal(f"“{typed.strip()}” is not the document's name: nothing was deleted."),
                           icon=":material/info:")
            else:
                try:
                    queued(kb.submit_delete(doc.doc_id, actor), f"Deleting {doc.name}…")
                except KbError as exc:
                    refused(exc)


def attempt_rows(attempts: list[FailedAttempt]) -> list[dict]:
    return [
        {
            "file": a.name,
            "failed (UTC)": when(a.created_at),
            "uploader": a.uploader,
            "for": "a new version" if a.doc_id else "a new document",
            "original": "kept" if a.kept else "not kept",
            "reason": a.reason,
        }
        for a in attempts
    ]


def failed_uploads(kb: KnowledgeBase, actor: Actor, attempts: list[FailedAttempt]) -> None:
    st.subheader(f"Failed uploads ({len(attempts)})")
    if not attempts:
        st.caption("None.")
        return
    note("Uploads that could not be added; they are not documents. Retry a kept file (after fixing the cause, "
         "say a service that was down), or dismiss the record.")
    safe_table(attempt_rows(attempts), column_config={"reason": st.column_config.TextColumn(width="large")})
    labels = {a.id: f"{a.name} ({when(a.created_at)}, {a.uploader or 'unknown'})" for a in attempts}
    chosen = st.selectbox("Failed upload", list(labels), format_func=labels.__getitem__, key="attempt_chosen")
    attempt = next(a for a in attempts if a.id == chosen)
    with st.expander("Reason in full", expanded=True):
        st.text(attempt.reason)
    retry, dismiss = st.columns(2)
    if retry.button("Retry", icon=":material/replay:", disabled=not attempt.kept, key="attempt_retry",
                    help=None if attempt.kept else "The file was refused before it was stored: upload it again."):
        try:
            queued(kb.retry_attempt(attempt.id, actor), f"{attempt.name} is queued again.")
        except KbError as exc:
            refused(exc)
    if dismiss.button("Dismiss", icon=":material/delete_sweep:", key="attempt_dismiss"):
        try:
            kb.dismiss_attempt(attempt.id, actor)
            st.session_state["attempt_dismissed"] = attempt.name
            st.rerun()
        except KbError as exc:
            refused(exc)


def main() -> None:
    kb = knowledge_base()
    actor = current_actor()
    st.title("Documents")
    documents = kb.documents(actor=actor)
    attempts = kb.failed_attempts(actor=actor)
    note(f"{len(documents)} documents" + (f", {len(attempts)} failed uploads" if attempts else "")
         + ("" if kb.is_admin(actor) else " that you may see"))
    if dismissed := st.session_state.pop("attempt_dismissed", None):
        st.success(markdown_literal(f"Dismissed the failed upload of {dismissed}."), icon=":material/check_circle:")
    if st.session_state.get(JOBS_KEY):
        show_jobs(kb, st.session_state[JOBS_KEY], key="documents")
        if st.button("Clear this list", icon=":material/clear_all:", key="clear_document_jobs"):
            st.session_state[JOBS_KEY] = []
            st.rerun()

    where = filters(documents)
    shown = kb.documents(actor=actor, where=where)
    note(f"{len(shown)} of {len(documents)} documents shown")
    if shown:
        safe_table(document_rows(shown), column_config=DOCUMENT_COLUMNS)
        labels = document_labels(shown)
        chosen = st.selectbox("Document", list(labels), format_func=labels.__getitem__, index=None,
                              key=CHOSEN_KEY, placeholder="Choose a document to look into")
        doc = next((d for d in shown if d.doc_id == chosen), None)
        if doc is not None:
            with st.container(border=True):
                detail(kb, actor, doc)
    else:
        st.caption("No documents match." if documents else "None yet. Add some on the Upload page.")
    failed_uploads(kb, actor, attempts)


main()
