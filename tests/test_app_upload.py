"""The Upload page under AppTest: several files at once, folders, live progress with a reason for
every failure, work that survives leaving the page, reloading and restarting the app, each person's own
list of uploads with its estimate, cancelling and retrying, and the document list."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from app_helpers import APP, LEAVE, TRAVEL, app_environment, html_of, new_app, restart, wait_for_jobs
from app_pages.common import _start
from kb.config import load_settings
from kb.jobs import Worker
from kb.records import Job
from kb.service import KnowledgeBase
from kb.auth import LOCAL_ADMIN, Actor, actor_for

ANONYMOUS = Actor()


@pytest.fixture(scope="module")
def kb(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("upload")
    with app_environment(root) as base:
        yield base


@pytest.fixture(autouse=True)
def fresh_list(request: pytest.FixtureRequest):
    """Every test starts with an empty "Your uploads" for the anonymous user (the module shares one app)."""
    if "kb" in request.fixturenames:
        request.getfixturevalue("kb").clear_uploads(ANONYMOUS)


def upload(app, files: list[tuple[str, bytes, str]], folder: bool = False):
    if folder:
        app.toggle[0].set_value(True).run()
    app.file_uploader[0].set_value(files).run()
    (add,) = [b for b in app.button if b.label.startswith("Add ")]
    assert add.label == f"Add {len(files)} file{'s' if len(files) != 1 else ''} to the knowledge base"
    add.click().run()
    assert not app.exception, app.exception
    return app


def my_jobs(kb: KnowledgeBase, actor: Actor = ANONYMOUS) -> list[int]:
    """The ids of the actor's uploads, as the catalog lists them (what "Your uploads" shows)."""
    return [job.id for job in kb.uploads(actor)]


def job_table(app) -> list[dict]:
    """The rows of the progress table (the first dataframe on the page)."""
    return app.dataframe[0].value.to_dict("records")


def document_table(app) -> dict[str, dict]:
    return {row["document"]: row for row in app.dataframe[-1].value.to_dict("records")}


def summary(app) -> str:
    return next(h.value for h in app.html if "kb-jobs-summary" in h.value)


def user_app(email: str) -> AppTest:
    """A session signed in through OIDC as `email` (verified), on the Upload page."""
    app = AppTest.from_file(str(APP), default_timeout=60)
    app.secrets["auth"] = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "x"}
    app.user = {"is_logged_in": True, "email": email, "email_verified": True}
    app.run()
    app.switch_page("app_pages/upload.py").run()
    assert not app.exception, app.exception
    return app


@contextmanager
def paused_worker() -> Iterator[None]:
    """The app's queue worker stopped meanwhile, so queued jobs stay queued; a new one afterwards."""
    running = _start()
    running.worker.stop()
    try:
        yield
    finally:
        running.worker = Worker(running.kb.queue)
        running.worker.start()


def test_several_files_each_get_a_status_and_failures_a_one_line_reason(kb):
    app = upload(new_app("app_pages/upload.py"), [
        ("leave.md", LEAVE.encode(), "text/markdown"),
        ("travel.md", TRAVEL.encode(), "text/markdown"),
        ("scan.pdf", b"%PDF-1.7\nnot really a pdf", "application/pdf"),
    ])
    assert not app.file_uploader[0].value  # emptied, ready for the next files
    wait_for_jobs(kb, my_jobs(kb))
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
    wait_for_jobs(kb, my_jobs(kb))
    app.run()
    assert [row["file"] for row in job_table(app)] == ["hr/benefits.md"]
    assert kb.catalog.named("hr/benefits.md")[0].status == "ok"


def test_uploaded_names_are_never_paths(kb):
    app = upload(new_app("app_pages/upload.py"), [("../../etc/passwd.txt", b"Payroll runs on the 25th.\n", "text/plain")])
    wait_for_jobs(kb, my_jobs(kb))
    assert kb.catalog.named("passwd.txt")[0].status == "ok"
    assert not (kb.settings.data_dir.parent.parent / "etc").exists()


def test_leaving_the_page_does_not_cancel_the_upload(kb):
    app = upload(new_app("app_pages/upload.py"), [("holidays.md", b"# Holidays\n\nThe office closes on public holidays.\n",
                                                "text/markdown")])
    jobs = my_jobs(kb)
    app.switch_page("app_pages/chat.py").run()  # navigate away at once
    wait_for_jobs(kb, jobs)
    app.switch_page("app_pages/upload.py").run()
    assert [row["status"] for row in job_table(app)] == ["ok"]
    assert kb.search("public holidays office", actor=LOCAL_ADMIN)[0].chunk.source == "holidays.md"


def test_two_people_upload_at_the_same_time_and_each_sees_only_their_own_files(kb):
    ann = upload(user_app("ann@example.com"), [("ann.md", b"# Ann\n\nAnn's team handles payroll queries.\n", "text/markdown")])
    bob = upload(user_app("bob@example.com"), [("bob.md", b"# Bob\n\nBob's team handles laptop repairs.\n", "text/markdown")])
    ann_actor = actor_for("ann@example.com", kb.settings)
    wait_for_jobs(kb, my_jobs(kb, ann_actor) + my_jobs(kb, actor_for("bob@example.com", kb.settings)))
    ann.run()
    bob.run()
    assert [row["file"] for row in job_table(ann)] == ["ann.md"]
    assert [row["file"] for row in job_table(bob)] == ["bob.md"]
    again = user_app("ann@example.com")  # a reload, or a second tab: a new session of the same person
    assert [(row["file"], row["status"]) for row in job_table(again)] == [("ann.md", "ok")]
    stranger = new_app("app_pages/upload.py")  # anonymous
    assert "Your uploads" not in [h.value for h in stranger.subheader]
    assert kb.search("laptop repairs", actor=LOCAL_ADMIN)[0].chunk.source == "bob.md"


def test_uploads_survive_a_new_session_and_clear_hides_the_finished_ones(kb):
    upload(new_app("app_pages/upload.py"), [("canteen.md", b"# Canteen\n\nThe canteen opens at eight.\n", "text/markdown")])
    wait_for_jobs(kb, my_jobs(kb))
    reloaded = new_app("app_pages/upload.py")  # what a reload does: a new session, nothing in session_state
    assert "Your uploads" in [h.value for h in reloaded.subheader]
    assert [(row["file"], row["status"]) for row in job_table(reloaded)] == [("canteen.md", "ok")]
    (clear,) = [b for b in reloaded.button if b.label == "Clear finished"]
    clear.click().run()
    assert "1 finished file cleared from the list." in html_of(reloaded)
    assert "Your uploads" not in [h.value for h in new_app("app_pages/upload.py").subheader]
    assert kb.catalog.named("canteen.md")[0].status == "ok"  # the document stays


def test_the_groups_field_and_the_add_button_are_there_before_any_file_is_chosen(kb):
    app = new_app("app_pages/upload.py")
    assert [t.label for t in app.text_input] == ["Only for these groups (optional)"]
    (add,) = [b for b in app.button if b.label.startswith("Add ")]
    assert add.label == "Add files to the knowledge base" and add.disabled
    (info,) = app.info
    assert "nothing is added until you press **Add files to the knowledge base**" in info.value
    app.file_uploader[0].set_value([("a.md", b"# A\n\nText.\n", "text/markdown")]).run()
    assert "**Add 1 file to the knowledge base**" in app.info[0].value


def test_waiting_files_show_at_once_with_an_estimate_and_a_cancelled_one_never_runs(kb):
    files = [(f"memo{i}.md", f"# Memo {i}\n\nMemo {i} says the lift is serviced on Fridays.\n".encode(), "text/markdown")
             for i in range(3)]
    with paused_worker():
        app = upload(new_app("app_pages/upload.py"), files)
        assert [(row["file"], row["status"]) for row in job_table(app)] == [(name, "waiting") for name, _, _ in files]
        documents = document_table(app)
        assert all(documents[name]["status"] == "waiting" for name, _, _ in files)  # listed before they are indexed
        assert summary(app).endswith(">0 of 3 done</p>")  # no estimate before one is done

        first = kb.catalog.claim_next()  # the worker does one file
        assert first is not None and first.name == "memo0.md"
        kb.queue.runner.run(first)
        app.run()
        assert "memo0.md" in document_table(app) and "1 of 3 done, about 1 min left" in summary(app)

        app.multiselect[0].set_value([my_jobs(kb)[2]]).run()  # memo2.md only
        [b for b in app.button if b.label == "Cancel"][0].click().run()
        assert "memo2.md: cancelled before it started" in html_of(app)
        assert {row["file"]: row["status"] for row in job_table(app)} == {
            "memo0.md": "ok", "memo1.md": "waiting", "memo2.md": "cancelled"}
    wait_for_jobs(kb, my_jobs(kb))
    assert kb.catalog.named("memo1.md")[0].status == "ok"
    assert kb.catalog.named("memo2.md") == []  # it never ran
    assert all(p.chunk.source != "memo2.md" for p in kb.search("memo lift serviced Fridays", k=10, actor=LOCAL_ADMIN))


def test_a_failed_upload_is_retried_from_the_page(kb):
    runner = kb.queue.runner
    failures = ["the disk hiccupped"]

    def flaky(job: Job, stage: str) -> None:
        if failures:
            raise OSError(failures.pop())

    runner.on_stage = flaky
    try:
        app = upload(new_app("app_pages/upload.py"), [("lift.md", b"# Lift\n\nThe lift is serviced on Fridays.\n", "text/markdown")])
        wait_for_jobs(kb, my_jobs(kb))
        app.run()
        assert [(row["status"], row["details"]) for row in job_table(app)] == [("failed", "the disk hiccupped")]
        [b for b in app.button if b.label == "Retry"][0].click().run()
        assert not app.exception, app.exception
        assert "lift.md: queued again" in html_of(app)
        wait_for_jobs(kb, my_jobs(kb))
        app.run()
        assert [(row["file"], row["status"]) for row in job_table(app)] == [("lift.md", "ok")]  # the failed try left
    finally:
        runner.on_stage = None


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
        wait_for_jobs(base, my_jobs(base))
        app.run()
        (row,) = job_table(app)
        assert row["status"] == "ok" and row["details"].endswith("version 1")  # what any new name gets
        kept = base.catalog.document(hr_doc.doc_id)
        assert (kept.version, kept.owner, kept.groups) == (1, "hr-admin", ("hr",))
        alice = base.search("salary bands engineers euros", actor=actor_for("alice@example.com", base.settings))
        assert any("140,000" in p.chunk.text for p in alice)
        shown = {row["document"]: row for row in app.dataframe[1].value.to_dict("records")}
        assert shown["salaries.md"]["owner"] == "anonymous"  # the anonymous user sees only their own
