"""The Documents page under AppTest: what each person sees (and counts), search and filters, versions
and downloads, who may change who sees a document, delete with a confirmation, failed uploads with
their retry and dismiss, the same counts on every page, and a chat card after its document is gone."""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app_helpers import APP, LEAVE, TRAVEL, app_environment, html_of, plain, wait_for_jobs
from kb.auth import Actor, NotAuthorized, actor_for
from kb.jobs import reindex_step
from kb.service import KnowledgeBase

PASSWORD = "correct horse battery staple"
PAGE = "app_pages/documents.py"
SALARIES = "# Salary bands\n\nEngineers earn between 60,000 and 140,000 euros a year.\n"
TRAVEL_V2 = TRAVEL + "\nTrain travel is preferred for trips under four hours.\n"
MEMO = "# Parking memo\n\nThe car park on level minus two closes for repainting in March.\n"
ANN = {"is_logged_in": True, "email": "ann@example.com", "email_verified": True, "groups": ["sales"]}
BOB = {"is_logged_in": True, "email": "bob@example.com", "email_verified": True}


def ann(kb: KnowledgeBase) -> Actor:
    return actor_for("ann@example.com", kb.settings, ("sales",))


def bob(kb: KnowledgeBase) -> Actor:
    return actor_for("bob@example.com", kb.settings, ())


def submit_all(kb: KnowledgeBase, folder: Path, uploads: list[tuple[str, bytes, Actor | None, list[str] | None]]) -> list[str]:
    """Queue every upload at once (the worker takes them in order) and wait: the outcome of each."""
    ids = []
    for n, (name, content, actor, groups) in enumerate(uploads):
        path = folder / str(n) / name  # one folder per upload: the same name may come twice
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        kwargs = {"actor": actor} if actor is not None else {}
        ids += [s.job_id for s in kb.submit_paths([path], groups=groups, **kwargs)]
    wait_for_jobs(kb, ids)
    return [job.outcome for job in kb.jobs(ids)]


@pytest.fixture(scope="module")
def kb(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("documents")
    with app_environment(root, KB_ADMIN_PASSWORD=PASSWORD) as base:
        outcomes = submit_all(base, root / "docs", [
            ("leave.md", LEAVE.encode(), ann(base), None),
            ("memo.md", MEMO.encode(), ann(base), None),
            ("salaries.md", SALARIES.encode(), None, ["hr"]),
            ("travel.md", TRAVEL.encode(), None, None),
            ("travel.md", TRAVEL_V2.encode(), None, None),
            ("travel.md", b"", None, None),  # a failed new version: travel keeps serving version 2
            ("song.wav", b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00", ann(base), None),
            ("empty.txt", b"", ann(base), None),
        ])
        assert outcomes == ["ok"] * 5 + ["failed"] * 3
        yield base


def page(user: dict | None = None, admin: bool = False, name: str = PAGE) -> AppTest:
    app = AppTest.from_file(str(APP), default_timeout=60)
    if user is not None:
        app.secrets["auth"] = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "x"}
        app.user = user
    if admin:
        app.session_state["admin_password"] = PASSWORD
    app.run()
    app.switch_page(name).run()
    assert not app.exception, app.exception
    return app


def rows(app: AppTest, first_column: str) -> list[dict]:
    """The rows of the table whose first column is `first_column`."""
    for frame in app.dataframe:
        if list(frame.value.columns)[:1] == [first_column]:
            return frame.value.to_dict("records")
    return []


def names(app: AppTest) -> list[str]:
    return [row["document"] for row in rows(app, "document")]


def notes(app: AppTest) -> list[str]:
    return [re.sub(r"<[^>]+>", "", h.value).replace("&amp;", "&") for h in app.html if 'class="kb-note"' in h.value]


def everything(app: AppTest) -> str:
    """Every piece of text the page shows: tables, notes, messages, choices, labels."""
    parts = [html_of(app)] + [str(f.value.to_dict("records")) for f in app.dataframe]
    parts += [e.value for kind in ("markdown", "caption", "success", "warning", "error", "info", "text") for e in app.get(kind)]
    parts += [str(w.options) for w in [*app.selectbox, *app.multiselect]]
    parts += [str(m.value) for m in app.metric] + [str(m.label) for m in app.metric]
    return "\n".join(parts)


def doc_id(kb: KnowledgeBase, name: str) -> str:
    (found,) = [d for d in kb.catalog.served_documents() if d.name == name]
    return found.doc_id


def test_a_non_admin_never_sees_a_document_of_another_group_not_even_in_counts(kb):
    app = page(BOB)
    assert sorted(names(app)) == ["leave.md", "memo.md", "travel.md"]
    shown = everything(app)
    assert "salaries" not in shown.lower() and "140,000" not in shown and not re.search(r"\bhr\b", shown)
    assert "3 documents that you may see" in notes(app) and "3 of 3 documents shown" in notes(app)
    assert "song.wav" not in shown and "Failed uploads (0)" in [s.value for s in app.subheader]  # ann's, not bob's
    assert "salaries.md" in names(page(admin=True))  # an admin sees every document
    assert "4 documents, 3 failed uploads" in notes(page(admin=True))


def test_search_and_filters(kb):
    app = page(admin=True)
    assert sorted(names(app)) == ["leave.md", "memo.md", "salaries.md", "travel.md"]
    app.text_input(key="filter_name").set_value("LEA").run()
    assert names(app) == ["leave.md"]
    app.text_input(key="filter_name").set_value("").run()
    app.selectbox(key="filter_status").set_value("serving, last upload failed").run()
    assert names(app) == ["travel.md"]
    app.selectbox(key="filter_status").set_value("any").run()
    app.multiselect(key="filter_groups").set_value(["hr"]).run()
    assert names(app) == ["salaries.md"]
    app.multiselect(key="filter_groups").set_value([]).run()
    app.multiselect(key="filter_people").set_value(["ann@example.com"]).run()
    assert sorted(names(app)) == ["leave.md", "memo.md"]
    app.multiselect(key="filter_people").set_value([]).run()
    today = date.today()
    app.date_input(key="filter_dates").set_value((today - timedelta(days=1), today + timedelta(days=1))).run()
    assert len(names(app)) == 4
    app.date_input(key="filter_dates").set_value((date(2020, 1, 1), date(2020, 12, 31))).run()
    assert names(app) == [] and "No documents match." in [c.value for c in app.caption]


def test_a_document_shows_its_versions_passages_and_status_and_any_kept_version_downloads(kb):
    app = page(admin=True)
    table = {row["document"]: row for row in rows(app, "document")}
    assert table["travel.md"]["status"] == "🟠 serving, last upload failed" and table["leave.md"]["status"] == "🟢 serving"
    assert table["leave.md"]["pages"] == "–" and table["travel.md"]["last error"] == kb.catalog.document(doc_id(kb, "travel.md")).error
    travel = doc_id(kb, "travel.md")
    app.selectbox(key="document_chosen").set_value(travel).run()
    versions = rows(app, "version")
    assert [(v["version"], v["status"], v["uploader"], v["original"]) for v in versions] == [
        (2, "🟢 serving", "local admin", "kept"), (1, "⚪ superseded", "local admin", "kept")]
    assert all(v["added (UTC)"] for v in versions)
    error = kb.catalog.document(travel).error
    assert error and any("version 2 is still serving" in plain(w.value) and error in plain(w.value) for w in app.warning)
    assert app.selectbox(key=f"download-version-{travel}").options == ["2", "1"]
    assert [b.proto.label for b in app.get("download_button")] == ["Download version 2"]
    name, read = kb.version_original(travel, 1, actor=Actor(password=PASSWORD))
    assert name == "travel.md" and read().decode() == TRAVEL  # the older version, as it was uploaded
    assert any("Train travel is preferred" in t.value for t in app.text)  # the preview of its passages
    assert kb.version_original(doc_id(kb, "salaries.md"), 1, actor=bob(kb)) is None
    with pytest.raises(NotAuthorized):
        kb.versions(doc_id(kb, "salaries.md"), actor=bob(kb))
    with pytest.raises(NotAuthorized):
        kb.passages(doc_id(kb, "salaries.md"), actor=bob(kb))


def test_who_sees_a_document_is_changed_by_its_owner_and_not_by_a_stranger(kb):
    leave = doc_id(kb, "leave.md")
    stranger = page(BOB)
    stranger.selectbox(key="document_chosen").set_value(leave).run()
    assert not any(t.label == "Visible to these groups" for t in stranger.text_input)
    assert not any(b.label in ("Change who sees it", "Delete this document") for b in stranger.button)
    assert "Only ann@example.com or an admin may change, re-ingest or delete this document." in notes(stranger)
    with pytest.raises(NotAuthorized):
        kb.set_groups(leave, ["sales"], bob(kb))  # the library refuses whatever a page shows

    owner = page(ANN)
    owner.selectbox(key="document_chosen").set_value(leave).run()
    (groups,) = [t for t in owner.text_input if t.label == "Visible to these groups"]
    groups.set_value("sales")  # in a form: typed, then submitted in the same run
    [b for b in owner.button if b.label == "Change who sees it"][0].click().run()
    assert not owner.exception and any("Now visible to sales" in plain(s.value) for s in owner.success), [e.value for e in owner.error]
    assert kb.catalog.document(leave).groups == ("sales",)
    assert "leave.md" not in names(page(BOB))  # bob no longer sees it anywhere
    kb.set_groups(leave, [], ann(kb))
    assert "leave.md" in names(page(BOB))


def test_delete_needs_the_typed_name_reports_and_a_chat_card_then_says_the_original_is_gone(kb):
    chat = page(ANN, name="app_pages/chat.py")
    chat.chat_input[0].set_value("When does the car park close for repainting?").run()
    assert not chat.exception, chat.exception
    assert "Original file" in [b.proto.label for b in chat.get("download_button")]

    memo = doc_id(kb, "memo.md")
    app = page(ANN)
    app.selectbox(key="document_chosen").set_value(memo).run()
    delete = next(b for b in app.button if b.label == "Delete this document")
    delete.click().run()
    assert [w.value for w in app.warning] == ["Type the document's name to confirm: nothing was deleted."]
    next(t for t in app.text_input if plain(t.label).startswith("Type the document's name")).set_value("memo")
    next(b for b in app.button if b.label == "Delete this document").click().run()
    assert [plain(w.value) for w in app.warning] == ["“memo” is not the document's name: nothing was deleted."]
    assert kb.catalog.document(memo) is not None
    next(t for t in app.text_input if plain(t.label).startswith("Type the document's name")).set_value("memo.md")
    next(b for b in app.button if b.label == "Delete this document").click().run()
    assert not app.exception and [plain(s.value) for s in app.success] == ["Deleting memo.md…"]
    wait_for_jobs(kb, app.session_state["document_jobs"])
    app.run()
    (job,) = rows(app, "file")
    assert (job["file"], job["status"], job["details"]) == ("memo.md", "ok", "deleted memo.md")
    assert "memo.md" not in names(app) and kb.catalog.document(memo) is None

    chat.run()  # the earlier answer's card, after its document was deleted
    assert not chat.exception, chat.exception
    assert "Original file" not in [b.proto.label for b in chat.get("download_button")]
    assert "The original is no longer kept." in notes(chat)


def test_failed_uploads_are_listed_with_their_reason_retried_and_dismissed(kb):
    app = page(ANN)
    attempts = {row["file"]: row for row in rows(app, "file")}
    assert set(attempts) == {"song.wav", "empty.txt"}  # not travel.md's failed version: that was the admin's
    for name, row in attempts.items():
        (recorded,) = [a for a in kb.failed_attempts(actor=ann(kb)) if a.name == name]
        assert row["reason"] == recorded.reason and row["uploader"] == "ann@example.com" and row["failed (UTC)"]
        assert row["original"] == "kept"
    assert "song.wav" not in names(app) and "empty.txt" not in names(app)  # failed attempts are not documents

    (song,) = [a for a in kb.failed_attempts(actor=ann(kb)) if a.name == "song.wav"]
    app.selectbox(key="attempt_chosen").set_value(song.id).run()
    assert song.reason in [t.value for t in app.text]  # the reason in full
    app.button(key="attempt_retry").click().run()
    assert not app.exception and [plain(s.value) for s in app.success] == ["song.wav is queued again."]
    (job_id,) = app.session_state["document_jobs"][-1:]
    (job,) = kb.jobs([job_id])
    assert (job.kind, job.name, job.blob, job.uploader) == ("ingest", "song.wav", song.blob, "ann@example.com")
    wait_for_jobs(kb, [job_id])
    again = [a for a in kb.failed_attempts(actor=ann(kb)) if a.name == "song.wav"]
    assert len(again) == 1 and again[0].id != song.id  # it failed again: one new record, the old one gone

    (empty,) = [a for a in kb.failed_attempts(actor=ann(kb)) if a.name == "empty.txt"]
    app = page(ANN)
    app.selectbox(key="attempt_chosen").set_value(empty.id).run()
    app.button(key="attempt_dismiss").click().run()
    assert not app.exception and [plain(s.value) for s in app.success] == ["Dismissed the failed upload of empty.txt."]
    assert "empty.txt" not in [row["file"] for row in rows(app, "file")]
    assert all(a.name != "empty.txt" for a in kb.failed_attempts(actor=Actor(password=PASSWORD)))
    with pytest.raises(NotAuthorized):  # someone else's failed upload is not bob's to retry or dismiss
        kb.dismiss_attempt(again[0].id, bob(kb))


def test_every_page_counts_the_same_documents(kb):
    expected = len(kb.documents(actor=Actor(password=PASSWORD)))
    documents = page(admin=True)
    assert f"{expected} of {expected} documents shown" in notes(documents)
    upload = page(admin=True, name="app_pages/upload.py")
    assert len(names(upload)) == expected
    admin = page(admin=True, name="app_pages/admin.py")
    assert {m.label: m.value for m in admin.metric}["Documents"] == str(expected)
    health = {row["component"]: row["detail"] for row in rows(admin, "component")}
    assert health["catalog"].startswith(f"{expected} documents,")
    assert kb.stats()["documents"] == expected


def test_reindex_progress_says_what_its_steps_are():
    assert reindex_step(127, 602) == "reading the originals again: 127 of 301 documents"
    assert reindex_step(400, 602) == "writing the new index: 99 of 301 documents"


def test_re_ingest_queues_the_kept_original_as_the_next_version(kb):
    leave = doc_id(kb, "leave.md")
    before = kb.catalog.document(leave)
    app = page(ANN)
    app.selectbox(key="document_chosen").set_value(leave).run()
    app.button(key=f"reingest-{leave}").click().run()
    assert not app.exception and plain(app.success[0].value).startswith("Re-ingest of leave.md queued")
    wait_for_jobs(kb, app.session_state["document_jobs"][-1:])
    after = kb.catalog.document(leave)
    assert (after.version, after.sha256, after.owner) == (before.version + 1, before.sha256, "ann@example.com")
    with pytest.raises(NotAuthorized):
        kb.reingest(leave, bob(kb))
