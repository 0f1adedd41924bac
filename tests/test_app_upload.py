"""The Upload page under AppTest: several files at once, folders, live progress with a reason for
every failure, work that survives leaving the page and restarting the app, and the document list."""

from __future__ import annotations

from pathlib import Path

import pytest
import streamlit as st

from app_helpers import LEAVE, TRAVEL, app_environment, new_app, restart, wait_for_jobs
from kb.config import load_settings
from kb.service import KnowledgeBase
from kb.auth import LOCAL_ADMIN, actor_for


@pytest.fixture(scope="module")
def kb(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("upload")
    with app_environment(root) as base:
        yield base


def upload(app, files: list[tuple[str, bytes, str]], folder: bool = False):
    if folder:
        app.toggle[0].set_value(True).run()
    app.file_uploader[0].set_value(files).run()
    (add,) = [b for b in app.button if b.label.startswith("Add ")]
    assert add.label == f"Add {len(files)} file{'s' if len(files) != 1 else ''} to the knowledge base"
    add.click().run()
    assert not app.exception, app.exception
    return app


def session_jobs(app) -> list[int]:
    return list(app.session_state["upload_jobs"])


def job_table(app) -> list[dict]:
    """The rows of the progress table (the first dataframe on the page)."""
    return app.dataframe[0].value.to_dict("records")


def test_several_files_each_get_a_status_and_failures_a_one_line_reason(kb):
    app = upload(new_app("app_pages/upload.py"), [
        ("leave.md", LEAVE.encode(), "text/markdown"),
        ("travel.md", TRAVEL.encode(), "text/markdown"),
        ("scan.pdf", b"%PDF-1.7\nnot really a pdf", "application/pdf"),
    ])
    assert not app.file_uploader[0].value  # emptied, ready for the next files
    wait_for_jobs(kb, session_jobs(app))
    app.run()
    assert any(">3 of 3 done, 1 failed</p>" in h.value for h in app.html)
    rows = {row["file"]: row for row in job_table(app)}
    assert rows["leave.md"]["status"] == "ok" and rows["travel.md"]["status"] == "ok"
    assert rows["scan.pdf"]["status"] == "failed"
    reason = rows["scan.pdf"]["details"]
    assert reason and "\n" not in reason and "Traceback" not in reason

    documents = {row["document"]: row for row in app.dataframe[1].value.to_dict("records")}
    assert documents["leave.md"]["status"] == "🟢 serving" and documents["leave.md"]["version"] == 1
    assert documents["leave.md"]["chunks"] >= 1 and documents["leave.md"]["uploader"] == "anonymous"
    assert documents["leave.md"]["pages"] == "–"  # unknown for Markdown: a dash, not "None"
    assert "scan.pdf" not in documents  # a failed upload is not a document: it is listed on the Documents page
    assert [a.reason for a in kb.failed_attempts(actor=LOCAL_ADMIN) if a.name == "scan.pdf"] == [reason]


def test_a_folder_keeps_paths_inside_it_and_skips_hidden_files(kb):
    app = upload(new_app("app_pages/upload.py"), [
        ("handbook/hr/benefits.md", b"# Benefits\n\nDental cover starts after three months.\n", "text/markdown"),
        ("handbook/.git/config", b"[core]\n", "text/plain"),
        ("handbook/.DS_Store", b"\x00\x01", "application/octet-stream"),
    ], folder=True)
    wait_for_jobs(kb, session_jobs(app))
    app.run()
    assert [row["file"] for row in job_table(app)] == ["hr/benefits.md"]
    assert kb.catalog.named("hr/benefits.md")[0].status == "ok"


def test_uploaded_names_are_never_paths(kb):
    app = upload(new_app("app_pages/upload.py"), [("../../etc/passwd.txt", b"Payroll runs on the 25th.\n", "text/plain")])
    wait_for_jobs(kb, session_jobs(app))
    assert kb.catalog.named("passwd.txt")[0].status == "ok"
    assert not (kb.settings.data_dir.parent.parent / "etc").exists()


def test_leaving_the_page_does_not_cancel_the_upload(kb):
    app = upload(new_app("app_pages/upload.py"), [("holidays.md", b"# Holidays\n\nThe office closes on public holidays.\n",
                                                "text/markdown")])
    jobs = session_jobs(app)
    app.switch_page("app_pages/chat.py").run()  # navigate away at once
    wait_for_jobs(kb, jobs)
    app.switch_page("app_pages/upload.py").run()
    assert [row["status"] for row in job_table(app)] == ["ok"]
    assert kb.search("public holidays office", actor=LOCAL_ADMIN)[0].chunk.source == "holidays.md"


def test_two_people_upload_at_the_same_time_and_each_sees_their_own_files(kb):
    ann = upload(new_app("app_pages/upload.py"), [("ann.md", b"# Ann\n\nAnn's team handles payroll queries.\n", "text/markdown")])
    bob = upload(new_app("app_pages/upload.py"), [("bob.md", b"# Bob\n\nBob's team handles laptop repairs.\n", "text/markdown")])
    wait_for_jobs(kb, session_jobs(ann) + session_jobs(bob))
    ann.run()
    bob.run()
    assert [row["file"] for row in job_table(ann)] == ["ann.md"]
    assert [row["file"] for row in job_table(bob)] == ["bob.md"]
    assert kb.search("laptop repairs", actor=LOCAL_ADMIN)[0].chunk.source == "bob.md"


def test_jobs_queued_while_the_app_was_down_are_done_after_it_starts(kb, tmp_path: Path):
    path = tmp_path / "parking.md"
    path.write_text("# Parking\n\nStaff parking permits are issued by facilities.\n")
    st.cache_resource.clear()  # the app is down
    offline = KnowledgeBase(load_settings())
    (submitted,) = offline.submit_paths([path])  # e.g. `kb ingest` while nothing serves
    offline.close()
    started = restart()
    wait_for_jobs(started, [submitted.job_id])
    assert started.catalog.named("parking.md")[0].status == "ok"


def test_an_anonymous_upload_cannot_replace_a_restricted_document(tmp_path: Path):
    """Found by attack: uploading a file named like an hr-only document replaced it for hr."""
    secret = "# Salary bands\n\nEngineers earn from 60,000 to 140,000 euros a year.\n"
    with app_environment(tmp_path, KB_USER_GROUPS="alice@example.com=hr") as base:
        (tmp_path / "salaries.md").write_text(secret)
        (submitted,) = base.submit_paths([tmp_path / "salaries.md"], groups=("hr",), uploader="hr-admin")
        wait_for_jobs(base, [submitted.job_id])
        hr_doc = base.catalog.named("salaries.md")[0]

        app = upload(new_app("app_pages/upload.py"), [("salaries.md", b"# Salary bands\n\nEveryone earns 10 euros.\n", "text/markdown")])
        wait_for_jobs(base, session_jobs(app))
        app.run()
        (row,) = job_table(app)
        assert row["status"] == "ok" and row["details"].endswith("version 1")  # what any new name gets
        kept = base.catalog.document(hr_doc.doc_id)
        assert (kept.version, kept.owner, kept.groups) == (1, "hr-admin", ("hr",))
        alice = base.search("salary bands engineers euros", actor=actor_for("alice@example.com", base.settings))
        assert any("140,000" in p.chunk.text for p in alice)
        shown = {row["document"]: row for row in app.dataframe[1].value.to_dict("records")}
        assert shown["salaries.md"]["owner"] == "anonymous"  # the anonymous user sees only their own
