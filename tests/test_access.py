"""Document visibility by group: a restricted passage never reaches a user outside its groups, by any
path (search, ask, stream, the document list, the original file, the CLI with --user, the chat page)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from app_helpers import app_environment, html_of, new_app, wait_for_jobs
from kb.auth import LOCAL_ADMIN, Actor, actor_for
from kb.cli import cli
from kb.config import load_settings
from kb.service import KnowledgeBase

SALARIES = "# Salary bands\n\nThe salary bands for engineers run from 60,000 to 140,000 euros a year.\n"
HANDBOOK = "# Welcome\n\nOur salary reviews happen every spring; ask HR about the salary process.\n"
GROUPS = "alice@example.com=hr;bob@example.com=engineering;anonymous="


def add(kb: KnowledgeBase, folder: Path, name: str, text: str, groups: tuple[str, ...] = ()) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)
    submitted = kb.submit_paths([folder / name], groups=groups)
    kb.work_queue()
    wait_for_jobs(kb, [s.job_id for s in submitted])


@pytest.fixture()
def kb(tmp_path: Path):
    settings = load_settings(
        env={}, secrets_file=tmp_path / "none.toml", data_dir=tmp_path / "data",
        user_groups=GROUPS, admin_password="s3cret",
    )
    base = KnowledgeBase(settings)
    assert base.take_queue()
    add(base, tmp_path / "docs", "handbook.md", HANDBOOK)
    add(base, tmp_path / "docs", "salaries.md", SALARIES, groups=("hr",))
    yield base
    base.close()


def sources(passages) -> set[str]:
    return {p.chunk.source for p in passages}


def test_groups_come_from_configuration_or_from_the_login(kb: KnowledgeBase):
    assert actor_for("bob@example.com", kb.settings).groups == ("engineering",)
    assert actor_for("Alice@Example.com", kb.settings).groups == ("hr",)
    assert actor_for("carol@example.com", kb.settings, identity_groups=("hr",)).groups == ("hr",)
    assert actor_for("stranger", kb.settings).groups == ()


def test_search_ask_and_stream_filter_inside_the_query(kb: KnowledgeBase):
    bob = actor_for("bob@example.com", kb.settings)
    alice = actor_for("alice@example.com", kb.settings)
    # k=1: if restricted chunks were dropped after retrieval, bob would get nothing at all
    assert sources(kb.search("salary bands engineers euros", k=1, actor=bob)) == {"handbook.md"}
    assert sources(kb.search("salary bands engineers euros", k=1, actor=alice)) == {"salaries.md"}

    answer = kb.ask("What are the salary bands for engineers?", actor=bob)
    assert "140,000" not in answer.text
    assert sources(answer.passages) <= {"handbook.md"}
    events = list(kb.stream("What are the salary bands for engineers?", actor=bob))
    assert all("salaries.md" not in sources(e.passages or []) for e in events)
    assert "140,000" in kb.ask("What are the salary bands for engineers?", actor=alice).text


def test_document_list_and_original_file(kb: KnowledgeBase):
    bob = actor_for("bob@example.com", kb.settings)
    restricted = kb.catalog.named("salaries.md")[0]
    assert [d.name for d in kb.documents(actor=bob)] == ["handbook.md"]
    assert kb.original(restricted.doc_id, actor=bob) is None
    assert kb.original(restricted.doc_id, actor=actor_for("alice@example.com", kb.settings)) is not None
    assert {d.name for d in kb.documents(actor=Actor(password="s3cret"))} == {"handbook.md", "salaries.md"}
    assert {d.name for d in kb.documents(actor=LOCAL_ADMIN)} == {"handbook.md", "salaries.md"}


def test_cli_user_flag(kb: KnowledgeBase, monkeypatch: pytest.MonkeyPatch):
    data_dir = kb.settings.data_dir
    kb.close()  # the CLI opens the embedded index itself
    monkeypatch.setenv("KB_DATA_DIR", str(data_dir))
    monkeypatch.setenv("KB_USER_GROUPS", GROUPS)
    monkeypatch.chdir(data_dir.parent)

    def run(*args: str) -> str:
        result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.stdout

    as_bob = json.loads(run("search", "salary bands engineers", "--json", "--user", "bob@example.com"))
    assert {row["source"] for row in as_bob} == {"handbook.md"}
    as_alice = json.loads(run("search", "salary bands engineers", "--json", "--user", "alice@example.com"))
    assert "salaries.md" in {row["source"] for row in as_alice}
    asked = json.loads(run("ask", "What are the salary bands for engineers?", "--json", "--user", "bob@example.com"))
    assert all(c["source"] != "salaries.md" for c in asked["citations"]) and "140,000" not in asked["answer"]
    listed = json.loads(run("docs", "--json", "--user", "bob@example.com"))
    assert [d["name"] for d in listed] == ["handbook.md"]


def test_the_chat_page_shows_an_anonymous_user_only_public_passages(tmp_path: Path):
    with app_environment(tmp_path, KB_USER_GROUPS=GROUPS) as base:
        add(base, tmp_path / "docs", "handbook.md", HANDBOOK)
        add(base, tmp_path / "docs", "salaries.md", SALARIES, groups=("hr",))
        app = new_app()
        app.chat_input[0].set_value("What are the salary bands for engineers?").run()
        assert not app.exception, app.exception
        page = html_of(app)
        assert "salaries.md" not in page and "140,000" not in page
        assert "handbook.md" in page
