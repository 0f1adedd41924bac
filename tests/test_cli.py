"""The `kb` command line: the exact output shapes scripts rely on, exit codes, and clear errors."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from kb.cli import cli

LEAVE = "# Leave\n\nTo request annual leave, submit a request in the HR portal two weeks ahead.\n"
TRAVEL = "# Travel\n\nBook business travel through the travel desk and keep every receipt.\n"


@pytest.fixture()
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("KB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)  # no .streamlit/secrets.toml from the repo
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "KB_QDRANT_URL", "KB_EMBEDDING"):
        monkeypatch.delenv(name, raising=False)
    return {**os.environ}


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    (root / "hr").mkdir(parents=True)
    (root / "hr" / "leave.md").write_text(LEAVE)
    (root / "travel.md").write_text(TRAVEL)
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("hidden")
    return root


def run(*args: str) -> "click.testing.Result":
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_ingest_prints_one_line_per_file_and_exit_codes(env, folder: Path):
    result = run("ingest", str(folder))
    assert result.exit_code == 0, result.output
    lines = sorted(result.stdout.splitlines())
    assert lines[0].startswith("ok hr/leave.md: ") and lines[1].startswith("ok travel.md: ")
    assert len(lines) == 2  # the hidden .git folder is skipped

    again = run("ingest", str(folder))
    assert sorted(again.stdout.splitlines())[0].startswith("unchanged hr/leave.md: ")

    (folder / "bad.docx").write_bytes(b"PK\x03\x04 not a real docx")
    mixed = run("ingest", str(folder))
    assert mixed.exit_code == 1
    assert any(line.startswith("failed bad.docx: ") for line in mixed.stdout.splitlines())


def test_ingest_of_a_missing_path_is_a_failed_line_not_a_traceback(env, tmp_path: Path):
    result = run("ingest", str(tmp_path / "nope.pdf"))
    assert result.exit_code == 1
    assert result.stdout.startswith("failed nope.pdf: cannot read the file")


def test_search_json_shape_and_batch(env, folder: Path, tmp_path: Path):
    run("ingest", str(folder))
    result = run("search", "annual leave request", "-k", "2", "--json")
    rows = json.loads(result.stdout)
    assert rows[0].keys() == {"rank", "score", "doc_id", "chunk_id", "source", "page", "pages", "text"}
    assert rows[0]["rank"] == 1 and rows[0]["source"] == "hr/leave.md" and rows[0]["page"] is None

    batch = tmp_path / "queries.jsonl"
    batch.write_text('{"id": "q1", "query": "travel desk"}\n{"id": 7, "query": "annual leave"}\n')
    lines = run("search", "--batch", str(batch), "-k", "1").stdout.splitlines()
    first, second = (json.loads(line) for line in lines)
    assert first["id"] == "q1" and first["results"][0]["source"] == "travel.md"
    assert second["id"] == 7 and second["results"][0]["source"] == "hr/leave.md"

    batch.write_text("not json\n")
    bad = CliRunner().invoke(cli, ["search", "--batch", str(batch)])
    assert bad.exit_code == 1 and "line 1" in bad.output and "Traceback" not in bad.output


def test_ask_json_shape(env, folder: Path):
    run("ingest", str(folder))
    data = json.loads(run("ask", "How do I request annual leave?", "--json").stdout)
    assert data.keys() == {"answer", "mode", "found", "citations", "claims"}
    assert data["mode"] == "extractive" and data["found"] is True
    citation = data["citations"][0]
    assert citation.keys() == {"n", "doc_id", "chunk_id", "source", "page", "pages", "text", "score"}
    assert f"[{citation['n']}]" in data["answer"] and citation["source"] == "hr/leave.md"
    assert data["claims"] and all(c["supported"] and c["reason"] == "" for c in data["claims"])  # quotes
    assert data["claims"][0].keys() == {"text", "cited", "supported", "reason"}


def test_ask_batch_answers_one_question_per_line_in_one_process(env, folder: Path, tmp_path: Path):
    run("ingest", str(folder))
    batch = tmp_path / "questions.jsonl"
    batch.write_text(
        '{"id": "leave", "query": "How do I request annual leave?"}\n\n'
        '{"id": 2, "query": "What is the capital of Mongolia?"}\n'
    )
    lines = run("ask", "--batch", str(batch)).stdout.splitlines()
    leave, offtopic = (json.loads(line) for line in lines)
    assert leave.keys() == {"id", "answer", "mode", "found", "citations", "claims"}
    assert leave["id"] == "leave" and leave["found"] and leave["citations"][0]["source"] == "hr/leave.md"
    assert offtopic["id"] == 2 and offtopic["found"] is False and offtopic["citations"] == []
    assert "do not contain the answer" in offtopic["answer"]

    batch.write_text('{"query": "no id"}\n')
    bad = CliRunner().invoke(cli, ["ask", "--batch", str(batch)])
    assert bad.exit_code == 1 and "line 1" in bad.output and "Traceback" not in bad.output
    both = CliRunner().invoke(cli, ["ask", "a question", "--batch", str(batch)])
    assert both.exit_code == 2 and "one of them" in both.output


def test_docs_delete_stats_reindex(env, folder: Path):
    run("ingest", str(folder))
    docs = json.loads(run("docs", "--json").stdout)
    assert {d["name"] for d in docs} == {"hr/leave.md", "travel.md"}

    stats = json.loads(run("stats", "--json").stdout)
    assert stats["documents"] == 2 and stats["chunks"] >= 2 and stats["search_mode"] == "keyword"

    reindexed = run("reindex")
    assert reindexed.exit_code == 0 and reindexed.stdout.startswith("ok: re-indexed 2 documents")

    assert run("delete", "travel.md").exit_code == 0
    assert [d["name"] for d in json.loads(run("docs", "--json").stdout)] == ["hr/leave.md"]
    missing = CliRunner().invoke(cli, ["delete", "nothing.md"])
    assert missing.exit_code == 1 and "no document" in missing.output


def test_help_everywhere(env):
    for command in ("ingest", "search", "ask", "docs", "delete", "stats", "reindex", "worker"):
        result = run(command, "--help")
        assert result.exit_code == 0 and "Usage:" in result.output


def test_ingest_while_another_process_holds_the_index(env, folder: Path):
    """`kb ingest` queues the files for the process holding the embedded index; no lock error."""
    holder = subprocess.Popen(
        [sys.executable, "-m", "kb.cli", "worker", "--poll", "0.2"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.time() + 60
        while "Working the queue" not in (line := holder.stderr.readline()):
            assert holder.poll() is None and time.time() < deadline, line
        result = subprocess.run(
            [sys.executable, "-m", "kb.cli", "ingest", str(folder)],
            env=env, capture_output=True, text=True, timeout=120,
        )
        assert result.returncode == 0, result.stderr
        assert sorted(result.stdout.splitlines())[0].startswith("ok hr/leave.md: ")
        assert "queued" in result.stderr
        search = subprocess.run(
            [sys.executable, "-m", "kb.cli", "search", "leave"], env=env, capture_output=True, text=True, timeout=60
        )
        assert search.returncode == 1 and "another kb process" in search.stderr and "Traceback" not in search.stderr
    finally:
        holder.terminate()
        holder.wait(timeout=30)


def test_a_bad_setting_is_one_line_naming_the_variable_and_exit_code_2(env):
    """The installed `kb` command checks every setting before it does anything."""
    result = subprocess.run(
        [str(Path(sys.executable).with_name("kb")), "stats"],
        env={**env, "KB_CHUNK_WORDS": "0"}, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == ["Error: KB_CHUNK_WORDS=0: must be >= 10"]
    assert result.stdout == ""


def test_an_endpoint_without_a_key_gives_llm_answers(env, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # keyless, like Ollama or vLLM; never called
    stats = json.loads(run("stats", "--json").stdout)
    assert stats["answer_mode"] == "llm"
