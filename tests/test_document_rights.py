"""A document's visibility and owner belong to the document: who may replace, delete or re-label it,
and that nobody learns anything about a document they cannot see (README, "Who sees what")."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from kb.auth import LOCAL_ADMIN, Actor, NotAuthorized, actor_for
from kb.cli import cli
from kb.config import load_settings
from kb.records import Document
from kb.service import KnowledgeBase

SALARIES = "# Salary bands\n\nThe salary bands for engineers run from 60,000 to 140,000 euros a year.\n"
FORGED = "# Salary bands\n\nThe salary bands for engineers run from 10 to 20 euros a year, says the attacker.\n"
HANDBOOK = "# Welcome\n\nOur salary reviews happen every spring; ask HR about the salary process.\n"
GROUPS = "alice@example.com=hr;bob@example.com=engineering;anonymous="
ANONYMOUS = Actor()


@pytest.fixture()
def kb(tmp_path: Path):
    settings = load_settings(
        env={}, secrets_file=tmp_path / "none.toml", data_dir=tmp_path / "data",
        user_groups=GROUPS, admin_password="s3cret",
    )
    base = KnowledgeBase(settings)
    assert base.take_queue()
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "handbook.md").write_text(HANDBOOK)
    (folder / "salaries.md").write_text(SALARIES)
    run(base, base.submit_paths([folder / "handbook.md"]))
    run(base, base.submit_paths([folder / "salaries.md"], groups=("hr",), uploader="hr-admin"))
    yield base
    base.close()


def run(kb: KnowledgeBase, submitted) -> list[tuple[str, str]]:
    """Work the queue; the (outcome, message) of each submitted job."""
    ids = [s.job_id for s in submitted] if isinstance(submitted, list) else [submitted.job_id]
    kb.work_queue()
    return [(job.outcome, job.message) for job in kb.catalog.jobs(ids)]


def upload(kb: KnowledgeBase, name: str, text: str, actor: Actor, groups=None) -> tuple[str, str]:
    data = text.encode()
    (result,) = run(kb, kb.submit_upload(name, io.BytesIO(data), len(data), actor=actor, groups=groups))
    return result


def only(kb: KnowledgeBase, name: str, owner: str | None = None) -> Document:
    found = [d for d in kb.catalog.named(name) if owner is None or d.owner == owner]
    assert len(found) == 1, found
    return found[0]


def alice(kb: KnowledgeBase) -> Actor:
    return actor_for("alice@example.com", kb.settings)


def bob(kb: KnowledgeBase) -> Actor:
    return actor_for("bob@example.com", kb.settings)


def texts(passages) -> str:
    return " ".join(p.chunk.text for p in passages)


# 1. Anyone can replace a restricted document --------------------------------------------------------


def test_an_anonymous_upload_under_a_restricted_name_never_touches_that_document(kb: KnowledgeBase):
    hr_doc = only(kb, "salaries.md")
    outcome, message = upload(kb, "salaries.md", FORGED, ANONYMOUS)
    assert (outcome, message.split(",")[-1].strip()) == ("ok", "version 1")  # as for any new name

    kept = kb.catalog.document(hr_doc.doc_id)
    assert kept.version == 1 and kept.owner == "hr-admin" and kept.groups == ("hr",)
    assert "140,000" in texts(kb.search("salary bands engineers euros", k=5, actor=alice(kb)))
    forged = only(kb, "salaries.md", owner=ANONYMOUS.name)
    assert forged.doc_id != hr_doc.doc_id and forged.groups == ()
    # the hr version still answers hr, and its text is still the original's
    assert kb.original(hr_doc.doc_id, actor=alice(kb))[1]().decode() == SALARIES


def test_a_visible_document_of_someone_else_cannot_be_replaced(kb: KnowledgeBase):
    outcome, message = upload(kb, "handbook.md", FORGED, bob(kb))
    assert outcome == "failed" and "belongs to local admin" in message
    assert only(kb, "handbook.md").version == 1
    assert "spring" in texts(kb.search("salary reviews spring", actor=bob(kb)))


def test_the_owner_replaces_their_document_and_it_keeps_its_groups(kb: KnowledgeBase):
    assert upload(kb, "notes.md", "# Notes\n\nThe hr offsite is in Lisbon.\n", alice(kb), groups=["hr"])[0] == "ok"
    outcome, message = upload(kb, "notes.md", "# Notes\n\nThe hr offsite moved to Porto.\n", alice(kb))
    assert outcome == "ok" and message.endswith("version 2")
    notes = only(kb, "notes.md")
    assert notes.version == 2 and notes.groups == ("hr",) and notes.owner == "alice@example.com"
    assert "Porto" not in texts(kb.search("hr offsite Porto", actor=bob(kb)))


def test_nobody_limits_a_document_to_a_group_they_are_not_in(kb: KnowledgeBase):
    outcome, message = upload(kb, "plant.md", "# Salary bands\n\nEveryone earns a million.\n", ANONYMOUS, ["hr"])
    assert outcome == "failed" and "only an admin may limit a document to groups you are not in (hr)" in message
    assert "million" not in texts(kb.search("salary bands million", actor=alice(kb)))


# 2. Visibility follows the document, not each upload ---------------------------------------------------


def test_a_new_version_without_groups_stays_restricted(kb: KnowledgeBase, tmp_path: Path):
    (tmp_path / "docs" / "salaries.md").write_text(SALARIES.replace("140,000", "150,000"))
    (result,) = run(kb, kb.submit_paths([tmp_path / "docs" / "salaries.md"]))
    assert result[0] == "ok" and result[1].endswith("version 2")
    assert only(kb, "salaries.md").groups == ("hr",)
    for actor in (bob(kb), ANONYMOUS):
        assert "150,000" not in texts(kb.search("salary bands engineers euros", k=5, actor=actor))
        assert "salaries.md" not in {d.name for d in kb.documents(actor=actor)}
    assert "150,000" in texts(kb.search("salary bands engineers euros", k=5, actor=alice(kb)))


def test_a_new_version_with_groups_restricts_every_version_at_once(kb: KnowledgeBase, tmp_path: Path):
    handbook = only(kb, "handbook.md")
    (tmp_path / "docs" / "handbook.md").write_text(HANDBOOK + "\nThe bonus pool is 3% of salary.\n")
    (result,) = run(kb, kb.submit_paths([tmp_path / "docs" / "handbook.md"], groups=("hr",)))
    assert result[0] == "ok" and "now visible to group hr" in result[1]
    assert kb.catalog.document(handbook.doc_id).groups == ("hr",)
    assert kb.search("salary reviews spring bonus", actor=bob(kb)) == []
    assert kb.original(handbook.doc_id, actor=bob(kb)) is None
    assert "handbook.md" not in {d.name for d in kb.documents(actor=bob(kb))}
    kb.work_queue() if kb.submit_reindex(LOCAL_ADMIN) else None  # a re-index never changes who sees what
    assert kb.search("salary reviews spring bonus", actor=bob(kb)) == []
    assert kb.search("salary reviews spring bonus", actor=alice(kb))


def test_the_same_bytes_with_groups_are_unchanged_but_relabelled(kb: KnowledgeBase, tmp_path: Path):
    (result,) = run(kb, kb.submit_paths([tmp_path / "docs" / "handbook.md"], groups=("hr",)))
    assert result == ("unchanged", "already indexed (version 1); now visible to group hr (and admins)")
    assert kb.search("salary reviews spring", actor=bob(kb)) == []


def test_set_groups_applies_to_the_index_and_every_read_at_once(kb: KnowledgeBase):
    handbook = only(kb, "handbook.md")
    job_id = kb.set_groups(handbook.doc_id, ["hr"], LOCAL_ADMIN)
    # before the queued job reaches the index, the catalog already decides
    assert kb.search("salary reviews spring", actor=bob(kb)) == []
    kb.work_queue()
    assert kb.catalog.jobs([job_id])[0].outcome == "ok"
    assert kb.search("salary reviews spring", k=1, actor=bob(kb)) == []  # the index's own filter now
    kb.set_groups(handbook.doc_id, [], LOCAL_ADMIN)
    kb.work_queue()
    assert kb.search("salary reviews spring", k=1, actor=bob(kb))


def test_only_owners_and_admins_change_groups_and_hidden_documents_read_as_missing(kb: KnowledgeBase):
    hr_doc = only(kb, "salaries.md")
    handbook = only(kb, "handbook.md")
    with pytest.raises(NotAuthorized, match="belongs to local admin"):
        kb.set_groups(handbook.doc_id, ["engineering"], bob(kb))
    with pytest.raises(NotAuthorized) as hidden:
        kb.set_groups(hr_doc.doc_id, [], bob(kb))
    with pytest.raises(NotAuthorized) as missing:
        kb.set_groups("0123456789abcdef", [], bob(kb))
    assert str(hidden.value).replace(hr_doc.doc_id, "ID") == str(missing.value).replace("0123456789abcdef", "ID")
    with pytest.raises(NotAuthorized) as hidden_delete:
        kb.submit_delete(hr_doc.doc_id, bob(kb))
    assert "there is no document with id" in str(hidden_delete.value)
    assert kb.catalog.document(hr_doc.doc_id).groups == ("hr",)


def test_owners_delete_their_own_documents(kb: KnowledgeBase):
    upload(kb, "mine.md", "# Mine\n\nBob's parking spot is 42.\n", bob(kb))
    mine = only(kb, "mine.md")
    with pytest.raises(NotAuthorized):
        kb.submit_delete(mine.doc_id, alice(kb))
    kb.submit_delete(mine.doc_id, bob(kb))
    kb.work_queue()
    assert kb.catalog.named("mine.md") == []


# 3. No oracle ---------------------------------------------------------------------------------------


def test_uploads_tell_nothing_about_documents_out_of_sight(kb: KnowledgeBase):
    # The right guess of an hidden document's bytes, and a name nobody uses, read the same.
    guessed = upload(kb, "salaries.md", SALARIES, ANONYMOUS)
    fresh = upload(kb, "unused-name.md", SALARIES, ANONYMOUS)
    assert guessed == fresh and guessed[0] == "ok" and guessed[1].endswith("version 1")
    assert len(kb.catalog.named("salaries.md")) == 2
    # and their ids are random, so an id says nothing about a name either
    assert len({d.doc_id[:4] for d in kb.catalog.named("salaries.md")}) == 2


# 4. Long names --------------------------------------------------------------------------------------


def test_long_names_never_collide(kb: KnowledgeBase, tmp_path: Path):
    deep = tmp_path / "tree" / ("d" * 120) / ("e" * 120)
    deep.mkdir(parents=True)
    (deep / ("x" * 60 + "-one.md")).write_text("# One\n\nThe first file talks about apples.\n")
    (deep / ("x" * 60 + "-two.md")).write_text("# Two\n\nThe second file talks about pears.\n")
    results = run(kb, kb.submit_paths([tmp_path / "tree"]))
    assert [r[1].split(",")[-1].strip() for r in results] == ["version 1", "version 1"]
    names = {d.name for d in kb.documents(actor=LOCAL_ADMIN)}
    assert sum(len(n) > 255 for n in names) == 2


# 5. kb delete never guesses -------------------------------------------------------------------------


def test_cli_delete_by_name_or_id_and_groups(kb: KnowledgeBase, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    handbook = only(kb, "handbook.md")
    # a document named like another document's id
    (tmp_path / "docs" / handbook.doc_id).write_text("# Decoy\n\nA file whose name is an id.\n")
    run(kb, kb.submit_paths([tmp_path / "docs" / handbook.doc_id]))
    data_dir = kb.settings.data_dir
    kb.close()
    monkeypatch.setenv("KB_DATA_DIR", str(data_dir))
    monkeypatch.setenv("KB_USER_GROUPS", GROUPS)

    def cli_run(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
        return result.exit_code, result.output

    code, out = cli_run("delete", handbook.doc_id)  # a name: deletes the decoy, never the handbook
    assert code == 0 and f"deleted {handbook.doc_id}" in out
    names = {d["name"] for d in json.loads(cli_run("docs", "--json")[1])}
    assert "handbook.md" in names and handbook.doc_id not in names
    assert cli_run("delete", "no-such.md")[0] == 1
    assert cli_run("delete")[0] == 2  # neither a name nor --id

    assert cli_run("groups", "--id", handbook.doc_id, "--group", "hr") == (0, f"handbook.md is visible to group hr (and admins)\n")
    assert cli_run("groups", "handbook.md") == (0, "hr\n")
    listed = json.loads(cli_run("docs", "--json", "--user", "bob@example.com")[1])
    assert "handbook.md" not in {d["name"] for d in listed}
    code, out = cli_run("groups", "handbook.md", "--everyone", "--user", "bob@example.com")
    assert code == 1 and "no document named 'handbook.md'" in out  # bob cannot see it any more
    assert cli_run("delete", "--id", handbook.doc_id) == (0, "deleted handbook.md\n")


def test_cli_ingest_as_a_user(kb: KnowledgeBase, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    data_dir = kb.settings.data_dir
    kb.close()
    monkeypatch.setenv("KB_DATA_DIR", str(data_dir))
    monkeypatch.setenv("KB_USER_GROUPS", GROUPS)
    forged = tmp_path / "forged" / "salaries.md"
    forged.parent.mkdir()
    forged.write_text(FORGED)
    handbook = tmp_path / "docs" / "handbook.md"
    handbook.write_text(HANDBOOK + "\nChanged.\n")

    result = CliRunner().invoke(cli, ["ingest", str(forged), str(handbook), "--user", "bob@example.com"])
    assert result.exit_code == 1  # the handbook is refused: it is not bob's
    lines = sorted(result.stdout.splitlines())
    assert lines[0].startswith("failed handbook.md: adding a new version: handbook.md belongs to local admin")
    assert lines[1].startswith("ok salaries.md:") and lines[1].endswith("version 1")
    result = CliRunner().invoke(cli, ["ingest", str(forged), "--user", "bob@example.com", "--group", "hr"])
    assert result.exit_code == 1 and "only an admin may limit" in result.stdout


# every path after a change of groups -------------------------------------------------------------------


def test_after_a_relabel_no_path_shows_the_document(kb: KnowledgeBase):
    handbook = only(kb, "handbook.md")
    kb.set_groups(handbook.doc_id, ["hr"], LOCAL_ADMIN)
    kb.work_queue()
    for actor in (bob(kb), ANONYMOUS):
        assert kb.search("salary reviews spring", actor=actor) == []
        answer = kb.ask("When do salary reviews happen in spring?", actor=actor)
        assert not answer.found and "spring" not in answer.text
        assert all(p.chunk.doc_id != handbook.doc_id for p in answer.passages)  # not among "closest passages"
        assert kb.original(handbook.doc_id, actor=actor) is None
        assert handbook.doc_id not in {d.doc_id for d in kb.documents(actor=actor)}
        assert kb.find_documents("handbook.md", actor=actor) == []
    assert kb.ask("When do salary reviews happen in spring?", actor=alice(kb)).found


def test_the_admin_page_changes_who_sees_a_document(tmp_path: Path):
    from app_helpers import add_documents, app_environment, html_of, new_app

    with app_environment(tmp_path, KB_ADMIN_PASSWORD="s3cret", KB_USER_GROUPS=GROUPS) as base:
        add_documents(base, tmp_path / "docs", {"handbook.md": HANDBOOK})
        admin = new_app("app_pages/admin.py")
        admin.text_input[0].set_value("s3cret")
        admin.button[0].click().run()
        (document,) = [s for s in admin.selectbox if s.label == "Document"]
        document.set_value(only(base, "handbook.md").doc_id)
        [t for t in admin.text_input if t.label == "Visible to these groups"][0].set_value("hr")
        [b for b in admin.button if b.label == "Change who sees it"][0].click().run()
        assert not admin.exception and admin.success, admin.exception
        assert only(base, "handbook.md").groups == ("hr",)

        chat = new_app()  # an anonymous visitor, at once
        chat.chat_input[0].set_value("When do salary reviews happen?").run()
        assert "spring" not in html_of(chat) and "handbook.md" not in html_of(chat)
