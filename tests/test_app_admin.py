"""The Admin page under AppTest: locked without configuration, locked and unlocked by password or by
an admin's OIDC login, statistics and health, re-index (success and failure), delete, feedback."""

from __future__ import annotations

import csv
import io
import json

import pytest

from app_helpers import (
    LEAVE, TRAVEL, add_documents, app_environment, html_of, knowledge_base, new_app, plain, restart, wait_for_jobs,
)
from kb.audit import audit_csv, audit_jsonl
from kb.auth import LOCAL_ADMIN, Actor, PasswordGuard
from kb.records import Answer

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module", autouse=True)
def app_data(tmp_path_factory: pytest.TempPathFactory):
    """One app over two documents for the module; tests that restart it get it via knowledge_base()."""
    root = tmp_path_factory.mktemp("admin")
    with app_environment(root, KB_ADMIN_PASSWORD=PASSWORD) as kb:
        add_documents(kb, root / "docs", {"leave.md": LEAVE, "travel.md": TRAVEL})
        yield


def unlocked_admin():
    app = new_app("app_pages/admin.py")
    app.text_input[0].set_value(PASSWORD)
    app.button[0].click().run()  # the form's Unlock button
    assert not app.exception, app.exception
    assert app.tabs, "the admin page should be unlocked"
    return app


def test_without_any_admin_configured_the_page_says_how_and_shows_nothing_else(monkeypatch):
    monkeypatch.delenv("KB_ADMIN_PASSWORD")
    restart()
    try:
        app = new_app("app_pages/admin.py")
        (info,) = app.info
        assert "KB_ADMIN_PASSWORD" in info.value and "[auth]" in info.value and "KB_ADMIN_EMAILS" in info.value
        assert not app.tabs and not app.text_input and not app.button and not app.dataframe
    finally:
        monkeypatch.setenv("KB_ADMIN_PASSWORD", PASSWORD)
        restart()


def test_locked_page_asks_for_the_password_and_refuses_a_wrong_one():
    app = new_app("app_pages/admin.py")
    assert not app.tabs and not app.dataframe
    app.text_input[0].set_value("guess")
    app.button[0].click().run()
    assert [e.value for e in app.error] == ["Wrong password."]
    assert not app.tabs and not app.dataframe and "admin_password" not in app.session_state


def try_password(password: str, app=None):
    app = app or new_app("app_pages/admin.py")
    app.text_input[0].set_value(password)
    app.button[0].click().run()
    assert not app.exception, app.exception
    return app


def frozen_guard() -> PasswordGuard:
    """A guard of its own (no wrong guesses left over from other tests) whose clock stands still, so
    that a wait cannot run out while AppTest starts the next session."""
    guard = knowledge_base().password_guard = PasswordGuard(clock=lambda: 1000.0)
    return guard


def test_a_guessing_session_is_slowed_down_and_does_not_lock_out_the_admin():
    frozen_guard()
    try:
        guesser = new_app("app_pages/admin.py")
        for _ in range(PasswordGuard.FREE_ATTEMPTS):
            try_password("guess", guesser)
            assert [e.value for e in guesser.error] == ["Wrong password."]
        try_password(PASSWORD, guesser)  # the guesser's own session now waits, even with the right one
        [refused] = guesser.error
        assert refused.value.startswith("Too many wrong passwords: try again in")
        assert not guesser.tabs and "admin_password" not in guesser.session_state
        admin = try_password(PASSWORD)  # the admin, in another session, is not held up by the guesser
        assert admin.tabs and not admin.error and admin.session_state["admin_password"] == PASSWORD
    finally:
        knowledge_base().password_guard = PasswordGuard()


def test_a_new_session_for_every_guess_is_slowed_down_by_the_address():
    frozen_guard()
    try:
        for _ in range(PasswordGuard.FREE_ATTEMPTS):
            assert [e.value for e in try_password("guess").error] == ["Wrong password."]
        # AppTest has no client address (like a loopback client): the fresh sessions share "unknown"
        [refused] = try_password("guess").error
        assert refused.value.startswith("Too many wrong passwords: try again in")
    finally:
        knowledge_base().password_guard = PasswordGuard()


def test_unlocked_page_shows_statistics_health_and_the_feedback_log():
    answer = Answer(text="A [1]", mode="extractive")
    knowledge_base().record_feedback(Actor(name="ann@example.com"), "x;=1+1", "Q?", answer, -1, "=cmd|' /C calc'!A0")
    app = unlocked_admin()
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Documents"] == "2" and int(metrics["Chunks"]) >= 2 and metrics["Index size"].endswith("MB")
    settings = {row["setting"]: row["value"] for row in app.dataframe[0].value.to_dict("records")}
    assert settings["embedding model"] == "none (keyword search only)" and settings["last re-index"]
    health = {row["component"]: row for row in app.dataframe[1].value.to_dict("records")}
    assert set(health) == {"index", "catalog", "embedding model", "LLM endpoint"}
    assert health["index"]["status"] == "ok" and health["catalog"]["status"] == "ok"
    assert health["LLM endpoint"]["status"] == "off" and "extractive" in health["LLM endpoint"]["detail"]
    feedback = table_with(app, "rating")
    # the table's own "Download as CSV" and copy would carry these cells into a spreadsheet: defused
    assert feedback[0]["user"] == "ann@example.com" and feedback[0]["comment"] == "'=cmd|' /C calc'!A0"
    assert feedback[0]["question"] == "x;'=1+1"
    export = [b for b in app.get("download_button") if b.proto.label == "Export as CSV"]
    assert export and not export[0].proto.disabled


def table_with(app, column: str) -> list[dict]:
    """The rows of the one table on the page that has this column."""
    (table,) = [t for t in app.dataframe if column in t.value.columns]
    return table.value.to_dict("records")


def test_the_audit_log_filters_answers_by_user_document_feedback_and_words_and_exports_them():
    kb = knowledge_base()
    leave, travel = kb.catalog.named("leave.md")[0], kb.catalog.named("travel.md")[0]
    alice, bob = Actor(name="alice@example.com"), Actor(name="=bob@example.com")
    asked = {}
    for actor, question in ((alice, "How do I request annual leave?"), (bob, "Which receipts do travel claims need?")):
        answer = kb.ask(question, actor=actor)
        asked[question] = kb.record_answer(actor, question, question, answer)
    kb.record_feedback(alice, "How do I request annual leave?", "", kb.ask("annual leave", actor=alice), -1, "",
                       answer_id=asked["How do I request annual leave?"])
    app = unlocked_admin()
    rows = table_with(app, "answer id")
    assert {r["user"] for r in rows} >= {"alice@example.com", "'=bob@example.com"}  # defused in the table too

    def shown(**choices) -> list[dict]:
        for key, value in choices.items():
            widget = app.text_input(key="audit-text") if key == "text" else app.selectbox(key=f"audit-{key}")
            widget.set_value(value)
        app.run()
        assert not app.exception, app.exception
        return table_with(app, "answer id")

    assert [r["user"] for r in shown(user="alice@example.com")] == ["alice@example.com"]
    assert [r["answer id"] for r in shown(user=None, doc=travel.doc_id)] == [asked["Which receipts do travel claims need?"]]
    assert shown(doc=None, feedback="down")[0]["answer id"] == asked["How do I request annual leave?"]
    assert [r["question"] for r in shown(feedback="any", text="RECEIPTS")] == ["Which receipts do travel claims need?"]
    assert leave.doc_id and rows[0]["link"].startswith("?answer=")

    exports = {b.proto.label: b for b in app.get("download_button") if b.proto.label.startswith("Export as")}
    assert {"Export as CSV", "Export as JSONL"} <= set(exports)
    records = kb.audit(LOCAL_ADMIN, user="=bob@example.com")
    (line,) = audit_jsonl(records).splitlines()
    assert json.loads(line)["question"] == "Which receipts do travel claims need?"
    header, row = list(csv.reader(io.StringIO(audit_csv(records))))
    assert row[header.index("user")] == "'=bob@example.com" and "travel.md" in row[header.index("citations")]


def oidc_app(user: dict):
    app = new_app()
    app.secrets["auth"] = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "x"}
    app.user = user
    app.switch_page("app_pages/admin.py").run()
    assert not app.exception, app.exception
    return app


def test_an_admin_email_from_the_oidc_login_unlocks_and_another_does_not(monkeypatch):
    monkeypatch.setenv("KB_ADMIN_EMAILS", "boss@example.com")
    restart()
    try:
        app = oidc_app({"is_logged_in": True, "email": "intern@example.com", "email_verified": True})
        assert not app.tabs and "intern@example.com is not an admin." in [w.value for w in app.warning]
        app.user = {"is_logged_in": True, "email": "Boss@Example.com", "email_verified": True}
        app.run()
        assert app.tabs
    finally:
        monkeypatch.delenv("KB_ADMIN_EMAILS")
        restart()


def test_an_unverified_admin_email_does_not_unlock(monkeypatch):
    monkeypatch.setenv("KB_ADMIN_EMAILS", "boss@example.com")
    restart()
    try:
        for verified in ({"email_verified": False}, {}):  # said false, or not said at all
            app = oidc_app({"is_logged_in": True, "email": "boss@example.com", **verified})
            assert not app.tabs and not app.dataframe
            [warning] = [plain(w.value) for w in app.warning]
            assert warning == "boss@example.com is not verified by your identity provider, so it cannot unlock Admin."
            assert "Signed in as boss@example.com (unverified)" in html_of(app)
            assert app.text_input  # the password still works for whoever has it
    finally:
        monkeypatch.delenv("KB_ADMIN_EMAILS")
        restart()


def test_reindex_runs_in_the_background_and_swaps_in_the_new_index():
    kb = knowledge_base()  # the page and this test share the app's knowledge base
    old_index = kb.index
    app = unlocked_admin()
    (button,) = [b for b in app.button if b.label == "Re-index now"]
    button.click().run()
    job_id = app.session_state["reindex_job"]
    wait_for_jobs(kb, [job_id])
    app.run()
    assert any(plain(s.value).startswith("Re-index complete: re-indexed 2 documents") for s in app.success)
    assert kb.index is not old_index
    assert kb.search("receipts reimbursed", actor=LOCAL_ADMIN)[0].chunk.source == "travel.md"


def test_a_failed_reindex_leaves_the_old_index_serving_and_says_why(monkeypatch):
    kb = knowledge_base()
    serving = kb.index

    def broken_create(spec):
        raise OSError("disk full")

    monkeypatch.setattr(kb.serving.store, "create", broken_create)
    app = unlocked_admin()
    [b for b in app.button if b.label == "Re-index now"][0].click().run()
    wait_for_jobs(kb, [app.session_state["reindex_job"]])
    app.run()
    (error,) = app.error
    assert "Re-index failed; the previous index is still serving" in error.value and "disk full" in plain(error.value)
    assert kb.index is serving
    assert kb.search("annual leave HR portal", actor=LOCAL_ADMIN)[0].chunk.source == "leave.md"


def test_delete_removes_the_chosen_documents():
    kb = knowledge_base()
    travel = kb.catalog.named("travel.md")[0]
    app = unlocked_admin()
    [b for b in app.button if b.label == "Delete"][0].click().run()  # nothing chosen
    assert [w.value for w in app.warning] == ["Choose a document to delete: nothing was deleted."]
    app.multiselect(key="delete_chosen").set_value([travel.doc_id])
    [b for b in app.button if b.label == "Delete"][0].click().run()  # not confirmed: the choice stays
    assert [w.value for w in app.warning] == ["Tick the box to confirm: nothing was deleted yet."]
    assert app.multiselect(key="delete_chosen").value == [travel.doc_id] and kb.catalog.document(travel.doc_id)
    app.checkbox(key="delete_sure").check()
    [b for b in app.button if b.label == "Delete"][0].click().run()
    assert not app.exception, app.exception
    jobs = app.session_state["delete_jobs"]
    wait_for_jobs(kb, jobs)
    app.run()
    (row,) = [r for frame in app.dataframe for r in frame.value.to_dict("records") if "file" in r]
    assert (row["file"], row["status"]) == ("travel.md", "ok")  # the file's name, not its id
    assert app.multiselect(key="delete_chosen").value == []
    assert kb.catalog.named("travel.md") == []
    assert all(p.chunk.source != "travel.md" for p in kb.search("receipts reimbursed travel", actor=LOCAL_ADMIN))
