"""Upload: add files or a whole folder, watch each file's progress, and see every document.

The files are stored and queued when "Add … to the knowledge base" is pressed (`KnowledgeBase.submit_uploads`);
the app's background worker ingests them, so leaving this page does not cancel anything and several people
can upload at the same time. "Your uploads" is read from the catalog (`KnowledgeBase.uploads`), so a reload,
a second tab or a restart shows the same list; cancelling, retrying and clearing are checked in the library.
"""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

from kb.auth import Actor
from kb.errors import KbError, first_line
from kb.records import Document, Job
from kb.service import KnowledgeBase
from app_pages.common import (
    DOCUMENT_COLUMNS, current_actor, document_rows, job_status, jobs_table, knowledge_base, max_upload_mb, note,
    refreshing, safe_table,
)

NOTES_KEY = "upload_notes"  # session_state: what the last cancel/retry/clear did, shown once
CHOSEN_KEY = "upload_chosen"  # the files picked for Cancel / Retry


def rows_with_pending(documents: list[Document], pending: Sequence[Job] = ()) -> list[dict]:
    """The documents, after a row for each of the person's own files still waiting or being worked on.

    A new document's catalog row exists from the moment its first version starts being written; until it
    serves (version 0, no error) the upload's row stands for it instead."""
    working = {job.name for job in pending}
    rows: list[dict] = [
        {
            "document": job.name, "status": job_status(job), "version": None, "pages": "–", "chunks": None,
            "owner": "", "visible to": "", "uploader": job.uploader, "updated (UTC)": "", "last error": "",
        }
        for job in pending
    ]
    return rows + document_rows([d for d in documents if not (d.name in working and d.version == 0 and not d.error)])


def upload_form(kb: KnowledgeBase, actor: Actor) -> None:
    folder = st.toggle("Upload a whole folder", help="Files keep their path inside the folder as their name.")
    generation = st.session_state.setdefault("uploader_generation", 0)  # a new key empties the uploader
    files = st.file_uploader(
        "Files to add (PDF, Word, PowerPoint, Excel, HTML, Markdown, text, e-mail)",
        accept_multiple_files="directory" if folder else True,
        max_upload_size=max_upload_mb(kb),
        key=f"uploader-{generation}-{folder}",
    )
    groups = st.text_input(
        "Only for these groups (optional)", key=f"groups-{generation}",
        help="Comma-separated groups you belong to. Left empty, a new document is for everyone and an "
        "existing one keeps its groups; otherwise only these groups and admins see it.",
    )
    count = len(files or [])
    label = f"Add {count} file{'s' if count != 1 else ''} to the knowledge base" if count else "Add files to the knowledge base"
    st.info(
        "Choosing files only puts them in the box above: nothing is added until you press "
        f"**{label}**. Then each file is stored at once and indexed in the background.",
        icon=":material/info:",
    )
    if st.button(label, type="primary", icon=":material/add:", disabled=not files):
        try:
            chosen = [g.strip() for g in groups.split(",") if g.strip()]
            kb.submit_uploads(
                ((f.name, f, f.size) for f in files or []), actor=actor, from_folder=folder, groups=chosen or None,
            )
        except OSError as exc:  # the catalog cannot be written: the data directory is full or read-only
            st.error(f"The files could not be added: {exc}", icon=":material/error:")
            return
        st.session_state["uploader_generation"] = generation + 1
        st.rerun()


def uploads_panel(kb: KnowledgeBase, actor: Actor) -> bool:
    """The person's uploads with their estimate and the Cancel / Retry / Clear buttons; True while any
    is unfinished."""
    jobs = kb.uploads(actor)
    pending = [job for job in jobs if job.status != "done"]
    jobs_table(jobs, "uploads", kb.uploads_eta(jobs) if pending else None)
    retryable = [job for job in jobs if job.outcome in ("failed", "cancelled")]
    actionable = {job.id: job for job in pending + retryable}
    chosen: list[int] = []
    if actionable:
        chosen = st.multiselect(
            "Files to cancel or retry (none chosen: all of them)", options=list(actionable), key=CHOSEN_KEY,
            placeholder="All of them",
            format_func=lambda job_id: f"{actionable[job_id].name} ({job_status(actionable[job_id])})",
        )
    picked = [actionable[job_id] for job_id in chosen if job_id in actionable]
    cancel, retry, clear = st.columns(3)
    if cancel.button("Cancel", icon=":material/cancel:", disabled=not pending, key="upload-cancel",
                     help="Waiting files never run; a file being worked on stops before it is indexed."):
        act(kb, actor, "cancel", [job for job in picked if job.status != "done"] if picked else pending)
    if retry.button("Retry", icon=":material/replay:", disabled=not retryable, key="upload-retry",
                    help="Failed or cancelled files are queued again from the stored copy, if it is still kept."):
        act(kb, actor, "retry", [job for job in picked if job.status == "done"] if picked else retryable)
    if clear.button("Clear finished", icon=":material/clear_all:", disabled=len(pending) == len(jobs),
                    key="upload-clear", help="Takes finished files off this list (the documents stay)."):
        cleared = kb.clear_uploads(actor)
        st.session_state[NOTES_KEY] = [f"{cleared} finished file{'s' if cleared != 1 else ''} cleared from the list."]
        st.rerun()
    return bool(pending)


def act(kb: KnowledgeBase, actor: Actor, action: str, jobs: list[Job]) -> None:
    """Cancel or retry each job through the library (which checks it is the actor's), then redraw."""
    notes = []
    for job in jobs:
        try:
            if action == "cancel":
                notes.append(kb.cancel_job(job.id, actor))
            else:
                kb.retry_job(job.id, actor)
                notes.append(f"{job.name}: queued again")
        except KbError as exc:
            notes.append(first_line(exc))
    st.session_state[NOTES_KEY] = notes or ["Nothing to do for the files chosen."]
    st.rerun()


def documents_panel(kb: KnowledgeBase, actor: Actor) -> bool:
    """Every document the person may see, and their own files on the way; True while the queue has work."""
    pending = [job for job in kb.uploads(actor) if job.status != "done"]
    documents = kb.documents(actor=actor)
    if documents or pending:
        safe_table(rows_with_pending(documents, pending), column_config=DOCUMENT_COLUMNS)
    else:
        st.caption("None yet.")
    return kb.work_pending()


def main() -> None:
    kb = knowledge_base()
    actor = current_actor()
    st.title("Add documents")
    st.caption(
        f"Files up to {kb.settings.max_file_mb:g} MB. A file named like a document you added (or, for "
        "admins, any document) becomes its next version once it is indexed; identical files are skipped."
    )
    upload_form(kb, actor)

    mine = kb.uploads(actor)
    notes = st.session_state.pop(NOTES_KEY, [])  # what the last Cancel / Retry / Clear did
    if mine or notes:
        st.subheader("Your uploads")
    for line in notes:
        note(line)  # plain text: it holds file names
    if mine:
        refreshing(any(job.status != "done" for job in mine), lambda: uploads_panel(kb, actor))

    st.subheader("Documents")
    failed = len(kb.failed_attempts(actor=actor))
    st.page_link(
        "app_pages/documents.py", icon=":material/description:",
        label=f"{len(kb.documents(actor=actor))} documents" + (f", {failed} failed uploads" if failed else "")
        + ": search, versions, downloads and more on the Documents page",
    )
    refreshing(kb.work_pending(), lambda: documents_panel(kb, actor))


main()
