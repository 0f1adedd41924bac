"""The audit log: every answer shown (chat and `kb ask`) is kept as it was shown, with its citations'
document versions and text hashes; `kb audit` gives the rows to admins only."""

import hashlib
import json
from pathlib import Path

from click.testing import CliRunner
from test_cli import env, folder, run  # noqa: F401 (fixtures)

from kb.cli import cli


def test_kb_ask_is_recorded_and_kb_audit_gives_the_rows(env, folder: Path):
    run("ingest", str(folder))
    run("ask", "How do I request annual leave?")
    run("ask", "What is the capital of Mongolia?")
    rows = [json.loads(line) for line in run("audit", "--json").stdout.splitlines()]
    assert [r["question"] for r in rows] == ["What is the capital of Mongolia?", "How do I request annual leave?"]
    offtopic, leave = rows
    assert set(leave) == {"id", "time", "user", "question", "query", "answer", "mode", "found", "citations",
                          "claims", "feedback"}
    assert leave["mode"] == "extractive" and leave["found"] and leave["feedback"] is None and leave["time"]
    cited = leave["citations"][0]
    assert set(cited) == {"n", "doc_id", "version", "chunk_id", "page", "text_sha256"} and cited["version"] == 1
    shown = json.loads(run("show", cited["chunk_id"], "--json").stdout)
    assert cited["text_sha256"] == hashlib.sha256(shown["text"].encode()).hexdigest()  # the text as shown
    assert leave["claims"] and all(c["supported"] for c in leave["claims"])
    assert offtopic["found"] is False and offtopic["citations"] == []
    assert run("audit", "--json", "--since", "2999-01-01").stdout == ""
    assert run("audit", "--json", "--user", "nobody@example.com").stdout == ""
    assert "How do I request annual leave?" in run("audit").stdout
    doc = cited["doc_id"]
    assert [json.loads(x)["id"] for x in run("audit", "--json", "--document", doc).stdout.splitlines()] == [leave["id"]]
    assert run("audit", "--json", "--feedback", "rated").stdout == ""
    table = run("audit", "--csv").stdout.splitlines()
    assert table[0].startswith('"id","time","user"') and len(table) >= 3


def test_the_audit_log_is_for_admins_only(env, folder: Path, monkeypatch):
    run("ingest", str(folder))
    monkeypatch.setenv("KB_ADMIN_EMAILS", "boss@example.com")
    refused = CliRunner().invoke(cli, ["audit", "--as", "sam@example.com"])
    assert refused.exit_code == 1 and "needs an admin" in refused.output


def test_a_rating_reaches_the_answers_record(tmp_path: Path):
    from kb.auth import LOCAL_ADMIN
    from kb.config import load_settings
    from kb.service import KnowledgeBase

    (tmp_path / "leave.md").write_text("# Leave\n\nRequest annual leave in the HR portal two weeks ahead.\n")
    kb = KnowledgeBase(load_settings(env={}, secrets_file=tmp_path / "none.toml", data_dir=tmp_path / "data"))
    try:
        kb.submit_paths([tmp_path / "leave.md"])
        kb.work_queue()
        answer = kb.ask("How do I request annual leave?", actor=LOCAL_ADMIN)
        answer_id = kb.record_answer(LOCAL_ADMIN, "How do I request annual leave?", "annual leave", answer)
        kb.record_feedback(LOCAL_ADMIN, "How do I request annual leave?", "annual leave", answer, -1, "too short",
                           answer_id=answer_id)
        [record] = kb.audit(LOCAL_ADMIN)
        assert (record.id, record.query, record.rating, record.comment) == (answer_id, "annual leave", -1, "too short")
    finally:
        kb.close()


def test_the_worker_forgets_answers_older_than_kb_audit_days(tmp_path: Path):
    from kb.auth import LOCAL_ADMIN
    from kb.config import load_settings
    from kb.records import AuditRecord
    from kb.service import KnowledgeBase

    (tmp_path / "leave.md").write_text("# Leave\n\nRequest annual leave in the HR portal two weeks ahead.\n")
    settings = load_settings(env={"KB_AUDIT_DAYS": "30"}, secrets_file=tmp_path / "none.toml", data_dir=tmp_path / "data")
    kb = KnowledgeBase(settings)
    try:
        old = AuditRecord(0, "2020-01-01T00:00:00+00:00", "sam", "old question", "old", "", "extractive", False, (), ())
        kb.catalog.record_answer(old)
        kb.record_answer(LOCAL_ADMIN, "new question", "new", kb.ask("annual leave", actor=LOCAL_ADMIN))
        kb.submit_paths([tmp_path / "leave.md"])
        kb.work_queue()  # the worker's round applies the retention
        assert [r.question for r in kb.audit(LOCAL_ADMIN)] == ["new question"]
    finally:
        kb.close()
