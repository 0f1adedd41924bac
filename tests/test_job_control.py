"""Uploads as the catalog keeps them: whose they are, cancelling (waiting or mid-ingest, leaving no
trace), retrying from the stored original, clearing, the batch estimate, and the schema 2 migration."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from kb.auth import Actor
from kb.catalog import SCHEMA_VERSION, SqliteCatalog
from kb.config import load_settings
from kb.errors import BadRequest, NotAuthorized
from kb.parsing import ParseSandbox
from kb.records import Job
from kb.service import KnowledgeBase
from kb.uploads import about_left, eta_seconds

ANN = Actor(name="ann@example.com", email="ann@example.com")
BOB = Actor(name="bob@example.com", email="bob@example.com")
BOSS = Actor(name="boss", password="s3cret")
LEAVE = b"# Leave\n\nAnnual leave is requested in the HR portal two weeks ahead.\n"
TRAVEL = b"# Travel\n\nBook business travel through the travel desk and keep every receipt.\n"


@pytest.fixture(scope="module")
def sandbox():
    """One parsing helper for the module: starting one takes seconds, and each test's data is its own."""
    shared = ParseSandbox()
    yield shared
    shared.close()


@pytest.fixture()
def kb(tmp_path: Path, sandbox: ParseSandbox):
    settings = load_settings(env={"KB_ADMIN_PASSWORD": "s3cret"}, secrets_file=tmp_path / "none.toml",
                             data_dir=tmp_path / "data")
    base = KnowledgeBase(settings)
    base.queue.runner.sandbox = sandbox  # its own helper is never started, and closed with it
    assert base.take_queue()
    yield base
    base.close()


def upload(kb: KnowledgeBase, actor: Actor, *files: tuple[str, bytes], groups: tuple[str, ...] | None = None) -> list[int]:
    import io
    submitted = kb.submit_uploads(((name, io.BytesIO(data), len(data)) for name, data in files), actor=actor,
                                  groups=groups)
    return [s.job_id for s in submitted]


def job(kb: KnowledgeBase, job_id: int) -> Job:
    return kb.jobs([job_id])[0]


def indexed(kb: KnowledgeBase) -> dict[str, set[int]]:
    return kb.index.document_versions()


def test_each_person_sees_only_their_own_uploads_and_admins_may_list_everyones(kb: KnowledgeBase, tmp_path: Path):
    (ann_job,) = upload(kb, ANN, ("leave.md", LEAVE))
    (bob_job,) = upload(kb, BOB, ("travel.md", TRAVEL))
    assert [(j.id, j.status) for j in kb.uploads(ANN)] == [(ann_job, "queued")]  # listed before it runs
    kb.work_queue()
    assert [j.name for j in kb.uploads(ANN)] == ["leave.md"] and [j.name for j in kb.uploads(BOB)] == ["travel.md"]
    assert [j.name for j in kb.uploads(BOSS, everyone=True)] == ["leave.md", "travel.md"]
    with pytest.raises(NotAuthorized):
        kb.uploads(ANN, everyone=True)
    reopened = KnowledgeBase(kb.settings)  # another process, or the app after a restart
    try:
        assert [j.id for j in reopened.uploads(ANN)] == [ann_job] and job(reopened, bob_job).outcome == "ok"
    finally:
        reopened.close()


def test_clearing_hides_finished_uploads_and_keeps_waiting_ones(kb: KnowledgeBase):
    (done_id,) = upload(kb, ANN, ("leave.md", LEAVE))
    kb.work_queue()
    (waiting_id,) = upload(kb, ANN, ("travel.md", TRAVEL))
    (bobs,) = upload(kb, BOB, ("bob.md", b"# Bob\n\nBob repairs laptops.\n"))
    assert kb.clear_uploads(ANN) == 1
    assert [j.id for j in kb.uploads(ANN)] == [waiting_id]
    assert [j.id for j in kb.uploads(BOB)] == [bobs]  # someone else's list is theirs to clear
    assert job(kb, done_id).outcome == "ok"  # still in the catalog, only off the list


def test_a_cancelled_waiting_upload_never_runs(kb: KnowledgeBase):
    (job_id,) = upload(kb, ANN, ("leave.md", LEAVE))
    blob = job(kb, job_id).blob
    assert kb.cancel_job(job_id, ANN) == "leave.md: cancelled before it started"
    assert kb.work_queue() == 0
    cancelled = job(kb, job_id)
    assert (cancelled.status, cancelled.outcome) == ("done", "cancelled")
    assert kb.catalog.named("leave.md") == [] and indexed(kb) == {}
    assert not kb.blobs.exists(blob)  # nothing needs the original any more
    assert kb.cancel_job(job_id, ANN) == "leave.md had already finished"


@pytest.mark.parametrize("stage", ["started", "parsed", "indexing", "written"])
def test_cancelling_a_running_upload_leaves_index_and_catalog_as_they_were(kb: KnowledgeBase, stage: str):
    (first,) = upload(kb, ANN, ("leave.md", LEAVE))
    kb.work_queue()
    before = kb.catalog.named("leave.md")[0]
    versions_before = kb.catalog._query("SELECT * FROM versions ORDER BY doc_id, version")
    assert indexed(kb) == {before.doc_id: {1}}
    (new_doc, new_version) = upload(kb, ANN, ("travel.md", TRAVEL), ("leave.md", LEAVE + b"Also in writing.\n"),
                                    groups=())  # a new document, and a new version that would re-label
    seen: list[str] = []

    def cancel_at(running: Job, reached: str) -> None:
        seen.append(reached)
        if reached == stage:
            assert kb.cancel_job(running.id, ANN).endswith("unless it was already done")

    kb.queue.runner.on_stage = cancel_at
    kb.work_queue()
    assert stage in seen
    for job_id in (new_doc, new_version):
        assert (job(kb, job_id).outcome, job(kb, job_id).message) == ("cancelled", "cancelled; nothing of it was indexed")
    assert kb.catalog.named("travel.md") == []
    after = kb.catalog.named("leave.md")
    assert after == [before]  # same version, groups, error and time
    assert kb.catalog._query("SELECT * FROM versions ORDER BY doc_id, version") == versions_before
    assert indexed(kb) == {before.doc_id: {1}}
    assert [p.chunk.source for p in kb.search("travel desk receipt", actor=ANN)] == []


def test_a_job_cancelled_while_running_is_not_run_again_after_a_crash(kb: KnowledgeBase):
    (job_id,) = upload(kb, ANN, ("leave.md", LEAVE))
    kb.catalog.claim_next()  # the worker took it, then the process died
    assert kb.cancel_job(job_id, ANN).startswith("leave.md: stopping")
    kb.queue.recover()
    assert job(kb, job_id).outcome == "cancelled" and kb.work_queue() == 0
    assert kb.catalog.named("leave.md") == []


def test_only_the_submitter_or_an_admin_may_cancel_or_retry(kb: KnowledgeBase):
    (job_id,) = upload(kb, ANN, ("leave.md", LEAVE))
    for act in (kb.cancel_job, kb.retry_job):
        with pytest.raises(NotAuthorized, match=f"there is no upload {job_id} of yours"):
            act(job_id, BOB)
        with pytest.raises(NotAuthorized, match="there is no upload 999 of yours"):
            act(999, BOB)  # the same answer for a job that does not exist
    assert kb.cancel_job(job_id, BOSS) == "leave.md: cancelled before it started"


def test_a_failed_upload_is_retried_from_its_stored_original(kb: KnowledgeBase):
    (job_id,) = upload(kb, ANN, ("leave.md", LEAVE))
    fail_once = ["started"]

    def flaky(running: Job, reached: str) -> None:
        if reached in fail_once:
            fail_once.clear()
            raise OSError("the disk hiccupped")

    kb.queue.runner.on_stage = flaky
    kb.work_queue()
    assert (job(kb, job_id).outcome, job(kb, job_id).message) == ("failed", "the disk hiccupped")
    with pytest.raises(BadRequest, match="only a failed or cancelled upload"):
        kb.retry_job(upload(kb, ANN, ("travel.md", TRAVEL))[0], ANN)  # still waiting
    again = kb.retry_job(job_id, ANN)
    assert [j.id for j in kb.uploads(ANN) if j.name == "leave.md"] == [again]  # the failed one left the list
    kb.work_queue()
    assert job(kb, again).outcome == "ok" and job(kb, again).uploader == ANN.name
    assert kb.search("annual leave HR portal", actor=ANN)[0].chunk.source == "leave.md"


def test_a_retry_without_the_stored_original_says_to_upload_again(kb: KnowledgeBase):
    kb.intake.max_bytes = 10  # as if KB_MAX_FILE_MB were tiny
    (too_big,) = upload(kb, ANN, ("leave.md", LEAVE))  # refused before it was stored
    kb.work_queue()
    assert job(kb, too_big).outcome == "failed"
    with pytest.raises(BadRequest, match=r"leave.md was never stored on the server \(file is 0.0 MB, over the .* MB"
                                         r" limit\): upload the file again"):
        kb.retry_job(too_big, ANN)


def stamp(second: int) -> str:
    return f"2026-12-01T10:{second // 60:02d}:{second % 60:02d}+00:00"


def test_the_estimate_follows_the_pace_of_the_batch():
    done = [Job(id=i, kind="ingest", size=1_000_000, status="done", outcome="ok", started_at=stamp(60 * (i - 1)),
                finished_at=stamp(60 * i)) for i in (1, 2)]  # 1 MB a minute
    left = [Job(id=i, kind="ingest", size=1_000_000, status="queued") for i in (3, 4, 5)]
    assert eta_seconds(done + left) == pytest.approx(180)
    assert eta_seconds(left) is None and eta_seconds(done) is None  # nothing finished yet; nothing left
    sizeless = [replace(j, size=0) for j in done + left]
    assert eta_seconds(sizeless) == pytest.approx(180)  # files per second instead
    assert [about_left(s) for s in (5, 180, 181, 3 * 3600)] == [
        "about 1 min left", "about 3 min left", "about 4 min left", "about 3 h left"]


def test_the_estimate_of_uploads_comes_from_the_catalog(kb: KnowledgeBase):
    ids = upload(kb, ANN, ("a.md", LEAVE), ("b.md", TRAVEL), ("c.md", LEAVE + TRAVEL))
    assert {j.batch for j in kb.jobs(ids)} == {ids[0]}
    assert kb.uploads_eta(kb.uploads(ANN)) is None  # nothing done yet
    claimed = kb.catalog.claim_next()
    assert claimed is not None and claimed.id == ids[0]
    kb.queue.runner.run(claimed)
    eta = kb.uploads_eta(kb.uploads(ANN))
    assert eta is not None and eta > 0


def test_a_catalog_of_schema_2_gains_job_control(tmp_path: Path):
    path = tmp_path / "c.sqlite3"
    SqliteCatalog(path).close()
    db = sqlite3.connect(path)  # a catalog written before cancelling and clearing existed
    db.executescript(
        "CREATE TABLE jobs_old AS SELECT id, kind, name, blob, size, uploader, groups, status, outcome, message,"
        " attempts, created_at, finished_at, doc_id, actor_groups, actor_admin, done, total FROM jobs;"
        " DROP TABLE jobs; ALTER TABLE jobs_old RENAME TO jobs; PRAGMA user_version = 2;"
        " INSERT INTO jobs (id, kind, name, blob, size, uploader, groups, status, outcome, message, attempts,"
        " created_at, finished_at, doc_id, actor_groups, actor_admin, done, total) VALUES"
        " (1, 'ingest', 'a.txt', '', 0, 'ann', 'null', 'done', 'ok', '', 1, '2026-01-01', '2099-01-01', '', '[]', 0, 0, 0),"
        " (2, 'ingest', 'b.txt', '', 0, 'ann', 'null', 'queued', '', '', 0, '2026-01-01', '', '', '[]', 0, 0, 0);"
    )
    db.close()
    catalog = SqliteCatalog(path)
    first, second = catalog.jobs([1, 2])
    assert (first.batch, first.cleared, second.batch, second.cleared, second.cancel_requested) == (1, True, 2, False, False)
    assert [j.id for j in catalog.uploads("ann", "2000-01-01")] == [2]  # old finished work does not flood the list
    assert catalog.cancel(2, "cancelled") == "cancelled"
    catalog.close()
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_the_command_line_lists_cancels_and_retries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from click.testing import CliRunner

    from kb.cli import cli

    monkeypatch.setenv("KB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "KB_QDRANT_URL", "KB_EMBEDDING", "KB_ADMIN_PASSWORD"):
        monkeypatch.delenv(name, raising=False)

    def run(*args: str):
        return CliRunner().invoke(cli, list(args), catch_exceptions=False)

    (tmp_path / "bad.docx").write_bytes(b"PK\x03\x04 not a real docx")
    (tmp_path / "later.md").write_text("# Later\n\nQueued while nothing works the queue.\n")
    assert run("ingest", str(tmp_path / "bad.docx")).exit_code == 1
    offline = KnowledgeBase(load_settings())
    try:
        (later,) = offline.submit_paths([tmp_path / "later.md"])  # queued; nobody works it yet
    finally:
        offline.close()
    listed = run("jobs")
    lines = listed.stdout.splitlines()
    assert lines[0].split()[1:3] == ["failed", "bad.docx"] and lines[1].split()[1:3] == ["waiting", "later.md"]
    assert listed.stderr.strip() == "1 of 2 done"
    assert [row["name"] for row in json.loads(run("jobs", "--json").stdout)] == ["bad.docx", "later.md"]
    assert run("jobs", "--user", "ann@example.com").stdout.strip() == "No uploads in the last day."

    assert run("cancel", str(later.job_id)).stdout.strip() == "later.md: cancelled before it started"
    gone = run("retry", str(later.job_id))
    assert gone.exit_code == 1 and "later.md is no longer kept on the server: upload the file again" in gone.stderr
    bad_id = int(lines[0].split()[0])
    again = run("retry", str(bad_id))
    assert again.exit_code == 1 and again.stdout.startswith("failed bad.docx: ")  # still not a real docx
    missing = run("cancel", "999")
    assert missing.exit_code == 1 and missing.stderr.strip() == "Error: cancelling an upload: there is no upload 999 of yours"
