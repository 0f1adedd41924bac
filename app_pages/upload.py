"""Upload: add files or a whole folder, watch each file's progress, and see every document.

The files are stored and queued at once (`KnowledgeBase.submit_uploads`); the app's background
worker ingests them, so leaving this page does not cancel anything and several people can upload
at the same time. The jobs live in the catalog and resume after a restart.
"""

from __future__ import annotations

import streamlit as st

from kb.service import KnowledgeBase
from app_pages.common import (
    DOCUMENT_COLUMNS, current_actor, document_rows, knowledge_base, max_upload_mb, safe_table, show_jobs,
)

JOBS_KEY = "upload_jobs"  # session_state: the ids of the jobs this session submitted


def upload_form(kb: KnowledgeBase) -> None:
    folder = st.toggle("Upload a whole folder", help="Files keep their path inside the folder as their name.")
    generation = st.session_state.setdefault("uploader_generation", 0)  # a new key empties the uploader
    files = st.file_uploader(
        "Files to add (PDF, Word, PowerPoint, Excel, HTML, Markdown, text, e-mail)",
        accept_multiple_files="directory" if folder else True,
        max_upload_size=max_upload_mb(kb),
        key=f"uploader-{generation}-{folder}",
    )
    if not files:
        return
    groups = st.text_input(
        "Only for these groups (optional)", key=f"groups-{generation}",
        help="Comma-separated groups you belong to. Left empty, a new document is for everyone and an "
        "existing one keeps its groups; otherwise only these groups and admins see it.",
    )
    label = f"Add {len(files)} file{'s' if len(files) != 1 else ''} to the knowledge base"
    if st.button(label, type="primary", icon=":material/add:"):
        try:
            chosen = [g.strip() for g in groups.split(",") if g.strip()]
            submitted = kb.submit_uploads(
                ((f.name, f, f.size) for f in files), actor=current_actor(), from_folder=folder,
                groups=chosen or None,
            )
        except OSError as exc:  # the catalog cannot be written: the data directory is full or read-only
            st.error(f"The files could not be added: {exc}", icon=":material/error:")
            return
        st.session_state.setdefault(JOBS_KEY, []).extend(s.job_id for s in submitted)
        st.session_state["uploader_generation"] = generation + 1
        st.rerun()


def main() -> None:
    kb = knowledge_base()
    st.title("Add documents")
    st.caption(
        f"Files up to {kb.settings.max_file_mb:g} MB. A file named like a document you added (or, for "
        "admins, any document) becomes its next version once it is indexed; identical files are skipped."
    )
    upload_form(kb)

    job_ids = st.session_state.get(JOBS_KEY, [])
    if job_ids:
        st.subheader("Your uploads")
        show_jobs(kb, job_ids, key="uploads")
        if st.button("Clear this list", icon=":material/clear_all:"):
            st.session_state[JOBS_KEY] = []
            st.rerun()

    st.subheader("Documents")
    actor = current_actor()
    documents = kb.documents(actor=actor)
    failed = len(kb.failed_attempts(actor=actor))
    st.page_link(
        "app_pages/documents.py", icon=":material/description:",
        label=f"{len(documents)} documents" + (f", {failed} failed uploads" if failed else "")
        + ": search, versions, downloads and more on the Documents page",
    )
    if documents:
        safe_table(document_rows(documents), column_config=DOCUMENT_COLUMNS)
    else:
        st.caption("None yet.")


main()
