"""Faults of the environment: a Qdrant server or LLM endpoint that is down or slow, a full disk, a
read-only data directory. Each gives one clear line, loses nothing, and the same objects work again
once the fault is gone.

The full-disk and read-only tests mount a small tmpfs and a read-only bind mount where that is
permitted (root with CAP_SYS_ADMIN, as on the development machines and CI); elsewhere they are skipped
and the simulated versions below them still run.
"""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
import subprocess
import sys
from collections import namedtuple
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from qdrant_client import QdrantClient
from qdrant_client.common.client_exceptions import ResourceExhaustedResponse
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

import kb.index.server as index_server
from fake_openai import FakeOpenAI
from kb.auth import LOCAL_ADMIN
from kb.catalog import SqliteCatalog
from kb.cli import cli
from kb.config import load_settings
from kb.index import IndexUnavailable
from kb.index.server import with_retries
from kb.records import Job
from kb.service import KnowledgeBase
from kb.storage import MIN_FREE_BYTES, BlobStore, DataDirError
from test_faults import assert_catalog_and_index_agree, env_for

LEAVE = """# Leave policy

To request annual leave, submit a request in the HR portal at least two weeks in advance.
Your manager approves or declines the request within three working days.
"""
TRAVEL = "# Travel\n\nBook business travel through the travel desk and keep every receipt.\n"
QUESTION = "How do I request annual leave?"


def settings_for(tmp_path: Path, **overrides):
    return load_settings(env={}, secrets_file=tmp_path / "none.toml", data_dir=tmp_path / "data", **overrides)


def ingest(kb: KnowledgeBase, *paths: Path) -> dict[str, tuple[str, str]]:
    submitted = kb.submit_paths(paths)
    kb.work_queue()
    return {job.name: (job.outcome, job.message) for job in kb.catalog.jobs([s.job_id for s in submitted])}


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")
    return folder / name


# --- retries with backoff ---------------------------------------------------------------------------

def refused() -> ResponseHandlingException:
    """What qdrant-client raises when nothing listens at the server's address."""
    return ResponseHandlingException(httpx.ConnectError("[Errno 111] Connection refused"))


def answered(status: int) -> UnexpectedResponse:
    return UnexpectedResponse(status, "", b"", httpx.Headers())


class Script:
    """A request that fails with the given errors, in order, then answers 42."""

    def __init__(self, *failures: Exception):
        self.failures = list(failures)
        self.calls = 0

    def __call__(self) -> int:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return 42


def test_transient_failures_are_retried_with_exponential_backoff():
    waits: list[float] = []
    request = Script(refused(), answered(503))
    assert with_retries(request, budget_s=30, sleep=waits.append) == 42
    assert request.calls == 3
    first, second = waits
    assert 0.375 <= first <= 0.5 and 0.75 <= second <= 1.0  # 0.5 s, then doubled, each less up to 25% jitter

    waits.clear()
    busy = Script(ResourceExhaustedResponse("too many requests", 3))
    assert with_retries(busy, budget_s=30, sleep=waits.append) == 42
    assert waits == [3.0]  # the server's Retry-After


def test_what_a_retry_cannot_fix_is_raised_at_once():
    for failure in (answered(400), answered(404), ResponseHandlingException(ValueError("not Qdrant's JSON"))):
        request = Script(failure)
        with pytest.raises(type(failure)):
            with_retries(request, budget_s=30, sleep=lambda s: None)
        assert request.calls == 1


def test_retries_stop_after_three_tries_or_when_the_budget_is_spent():
    down = Script(*(refused() for _ in range(5)))
    with pytest.raises(ResponseHandlingException):
        with_retries(down, budget_s=30, sleep=lambda s: None)
    assert down.calls == 3

    now = 0.0
    tries: list[float] = []

    def times_out() -> int:  # each try gives up after 20 s of a 30 s budget
        nonlocal now
        tries.append(now)
        now += 20
        raise ResponseHandlingException(httpx.ReadTimeout("timed out"))

    with pytest.raises(ResponseHandlingException):
        with_retries(times_out, budget_s=30, sleep=lambda s: None, clock=lambda: now)
    assert tries == [0, 20]  # a third try would start after the budget


class FlakyQdrant:
    """A QdrantClient (in memory) whose requests fail like an unreachable server while `down`, or for
    the next `failures` requests."""

    def __init__(self):
        self._client = QdrantClient(":memory:")
        self.down = False
        self.failures = 0
        self.requests = 0

    def __getattr__(self, name: str):
        method = getattr(self._client, name)

        def request(*args, **kwargs):
            self.requests += 1
            if self.down or self.failures:
                self.failures = max(0, self.failures - 1)
                raise refused()
            return method(*args, **kwargs)

        return request


@pytest.fixture()
def flaky_server(monkeypatch: pytest.MonkeyPatch) -> FlakyQdrant:
    """KB_QDRANT_URL's client replaced by a FlakyQdrant; retries wait milliseconds instead of seconds."""
    server = FlakyQdrant()
    monkeypatch.setattr(index_server, "QdrantClient", lambda **kwargs: server)
    monkeypatch.setattr(index_server, "RETRY_FIRST_DELAY_S", 0.001)
    return server


@pytest.mark.filterwarnings("ignore:Payload indexes have no effect in the local Qdrant")
def test_a_qdrant_server_that_is_down_then_back_needs_no_restart(tmp_path: Path, flaky_server: FlakyQdrant):
    url = "http://qdrant.invalid:6333"
    kb = KnowledgeBase(settings_for(tmp_path, qdrant_url=url))
    try:
        flaky_server.down = True
        with pytest.raises(IndexUnavailable, match=f"Qdrant at {url} is not reachable"):
            kb.open_index()
        assert flaky_server.requests == 3  # tried three times
        with pytest.raises(IndexUnavailable):
            kb.take_queue()

        flaky_server.down = False  # the server is back: the same object opens it and works
        assert kb.take_queue()
        folder = tmp_path / "docs"
        write(folder, "leave.md", LEAVE)
        assert ingest(kb, folder)["leave.md"][0] == "ok"

        flaky_server.failures = 2  # a blip: two refused connections, then answers
        assert kb.search("annual leave", actor=LOCAL_ADMIN)[0].chunk.source == "leave.md"

        flaky_server.down = True
        with pytest.raises(IndexUnavailable, match="not reachable"):
            kb.search("annual leave", actor=LOCAL_ADMIN)
        index_health = next(h for h in kb.health() if h.component == "index")
        assert index_health.status == "down" and "not reachable" in index_health.detail
        write(folder, "travel.md", TRAVEL)
        outcome, message = ingest(kb, folder / "travel.md")["travel.md"]
        assert outcome == "failed" and f"Qdrant at {url} is not reachable" in message

        flaky_server.down = False
        assert kb.search("annual leave", actor=LOCAL_ADMIN)[0].chunk.source == "leave.md"
        assert next(h for h in kb.health() if h.component == "index").status == "ok"
        assert ingest(kb, folder / "travel.md")["travel.md"][0] == "ok"  # the failed file, submitted again
        assert {d.name: d.status for d in kb.documents(actor=LOCAL_ADMIN)} == {"leave.md": "ok", "travel.md": "ok"}
        assert_catalog_and_index_agree(kb)
    finally:
        kb.close()


# --- the language model and the embedding endpoint -------------------------------------------------

def test_a_model_endpoint_that_fails_then_recovers(tmp_path: Path, fake_openai: FakeOpenAI,
                                                   caplog: pytest.LogCaptureFixture):
    settings = settings_for(
        tmp_path, openai_api_key="test-key", openai_base_url=fake_openai.base_url, embedding="openai:fake-embedding"
    )
    kb = KnowledgeBase(settings)
    try:
        assert kb.take_queue()
        write(tmp_path / "docs", "leave.md", LEAVE)
        assert ingest(kb, tmp_path / "docs")["leave.md"][0] == "ok"

        fake_openai.failure = "error"  # HTTP 500 on every request
        fake_openai.requests.clear()
        answer = kb.ask(QUESTION, actor=LOCAL_ADMIN)
        assert answer.mode == "extractive"
        assert "language model is not reachable (the server answered HTTP 500)" in answer.text
        assert "HR portal" in answer.text and answer.citations  # still an answer, from the documents
        assert len(fake_openai.chat_requests) == 3  # the request and the client's two retries
        embeddings = [body for path, body in fake_openai.requests if path.endswith("/embeddings")]
        assert len(embeddings) == 3  # the question's vector too, then keyword search alone
        assert "dense embedding failed, searching by keywords only" in caplog.text
        health = {h.component: h for h in kb.health()}
        assert health["LLM endpoint"].status == "down" and "HTTP 500" in health["LLM endpoint"].detail
        assert health["embedding model"].status == "down"

        fake_openai.failure = None  # back: the same knowledge base answers with the model again
        caplog.clear()
        answer = kb.ask(QUESTION, actor=LOCAL_ADMIN)
        assert answer.mode == "llm" and answer.text == "Leave is requested in the HR system [1]."
        assert "dense embedding failed" not in caplog.text
        assert {h.component: h.status for h in kb.health()} == {
            "index": "ok", "catalog": "ok", "embedding model": "ok", "LLM endpoint": "ok",
        }
    finally:
        kb.close()


def test_a_model_that_does_not_answer_in_time_gets_an_extractive_answer(tmp_path: Path, fake_openai: FakeOpenAI):
    settings = settings_for(tmp_path, openai_api_key="test-key", openai_base_url=fake_openai.base_url, timeout_s=1)
    kb = KnowledgeBase(settings)
    try:
        assert kb.take_queue()
        write(tmp_path / "docs", "leave.md", LEAVE)
        ingest(kb, tmp_path / "docs")
        fake_openai.failure = "hang"
        answer = kb.ask(QUESTION, actor=LOCAL_ADMIN)
        assert answer.mode == "extractive" and "(no reply in time)" in answer.text and answer.citations
        assert len(fake_openai.chat_requests) == 3  # each timed out after KB_TIMEOUT, then retried
        fake_openai.failure = None
        assert kb.ask(QUESTION, actor=LOCAL_ADMIN).mode == "llm"
    finally:
        kb.close()


# --- full disk and read-only data directory, simulated (run everywhere) ----------------------------

@pytest.mark.parametrize(
    "code, reason",
    [(errno.ENOSPC, "no space left on the disk holding the data directory"), (errno.EROFS, "is read-only")],
)
def test_a_failed_write_of_an_original_says_why_and_leaves_nothing(tmp_path: Path, monkeypatch, code, reason):
    store = BlobStore(tmp_path / "originals")

    def fail(fd: int) -> None:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(DataDirError, match=reason):
        store.put_bytes(b"x" * 100_000)
    assert list((tmp_path / "originals").rglob("*")) == []  # no half-written original, no temporary file


def test_originals_and_chunks_stop_short_of_filling_the_disk(tmp_path: Path, monkeypatch):
    kb = KnowledgeBase(settings_for(tmp_path))
    try:
        assert kb.take_queue()
        folder = tmp_path / "docs"
        write(folder, "leave.md", LEAVE)
        assert ingest(kb, folder)["leave.md"][0] == "ok"

        real = shutil.disk_usage
        Usage = namedtuple("Usage", "total used free")

        def free_space(free: int) -> None:
            monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(*real(path)[:2], free))

        free_space(MIN_FREE_BYTES + 1000)  # the original fits, its chunk's room in the index does not
        write(folder, "travel.md", TRAVEL)
        outcome, message = ingest(kb, folder / "travel.md")["travel.md"]
        assert outcome == "failed" and message.startswith("the index refused the update: no space left on the disk")
        free_space(MIN_FREE_BYTES - 1)  # not even the original
        write(folder, "big.md", "word " * 1000)
        outcome, message = ingest(kb, folder / "big.md")["big.md"]
        assert outcome == "failed" and "no space left on the disk holding the data directory" in message
        assert len(list((tmp_path / "data" / "originals").glob("??/*"))) == 2  # leave.md's and travel.md's

        monkeypatch.setattr(shutil, "disk_usage", real)  # space again: the same knowledge base carries on
        assert ingest(kb, folder / "travel.md")["travel.md"][0] == "ok"
        assert kb.search("annual leave", actor=LOCAL_ADMIN)[0].chunk.source == "leave.md"
        assert not list((tmp_path / "data" / "originals").glob(".incoming-*"))
        assert_catalog_and_index_agree(kb)
    finally:
        kb.close()


def test_a_full_catalog_rolls_back_the_whole_change_and_the_next_one_works(tmp_path: Path):
    catalog = SqliteCatalog(tmp_path / "catalog.sqlite3")
    catalog.enqueue(Job(id=0, kind="ingest", name="before.md"))
    limit = catalog._db.execute("PRAGMA max_page_count").fetchone()[0]
    pages = catalog._db.execute("PRAGMA page_count").fetchone()[0]
    catalog._db.execute(f"PRAGMA max_page_count = {pages}")  # SQLite's own SQLITE_FULL, as on a full disk
    with pytest.raises(DataDirError, match="no space left on the disk holding the data directory"):
        catalog.enqueue(Job(id=0, kind="ingest", name="x" * 20_000))
    catalog._db.execute(f"PRAGMA max_page_count = {limit}")
    catalog.enqueue(Job(id=0, kind="ingest", name="after.md"))
    assert [j.name for j in catalog.recent_jobs()] == ["after.md", "before.md"]
    assert catalog._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    catalog.close()


class _CommitFails:
    """The catalog's connection, except that the next COMMIT fails the way a full disk makes it fail."""

    def __init__(self, db: sqlite3.Connection):
        self._db = db

    def execute(self, sql: str, *args):
        if sql == "COMMIT":
            error = sqlite3.OperationalError("database or disk is full")
            error.sqlite_errorcode = sqlite3.SQLITE_FULL
            raise error
        return self._db.execute(sql, *args)

    def __getattr__(self, name: str):
        return getattr(self._db, name)


def test_a_commit_that_fails_is_rolled_back_so_the_catalog_does_not_stay_stuck(tmp_path: Path):
    catalog = SqliteCatalog(tmp_path / "catalog.sqlite3")
    real = catalog._db
    catalog._db = _CommitFails(real)
    with pytest.raises(DataDirError, match="no space left"):
        catalog.enqueue(Job(id=0, kind="ingest", name="lost.md"))
    catalog._db = real
    assert not real.in_transaction
    catalog.enqueue(Job(id=0, kind="ingest", name="after.md"))
    assert [j.name for j in catalog.recent_jobs()] == ["after.md"]  # the failed change left no trace
    catalog.close()


def test_an_unreadable_catalog_is_one_line(tmp_path: Path):
    (tmp_path / "catalog.sqlite3").write_bytes(b"this is not a database" * 100)
    with pytest.raises(DataDirError, match="the catalog .* cannot be opened: file is not a database"):
        SqliteCatalog(tmp_path / "catalog.sqlite3")


# --- full disk and read-only data directory, for real ----------------------------------------------

def mount(*args: str) -> None:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root and mount(8) to mount a small file system")
    result = subprocess.run(["mount", *args], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"mounting is not permitted here (needs CAP_SYS_ADMIN): {result.stderr.strip()}")


@pytest.fixture()
def mounts():
    """Mount points to unmount at the end of the test, whatever happens."""
    points: list[Path] = []
    yield points
    for point in reversed(points):
        if subprocess.run(["umount", str(point)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(point)], capture_output=True)


@pytest.fixture()
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The offline defaults for `kb` commands run in this process (no key, no server, no secrets file)."""
    monkeypatch.chdir(tmp_path)
    for name in ("OPENAI_API_KEY", "KB_QDRANT_URL", "KB_EMBEDDING", "KB_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)


def kb_here(data: Path, *args: str) -> subprocess.CompletedProcess:
    """`kb ARGS` in this process, for commands that fail before they touch the embedded index."""
    result = CliRunner().invoke(cli, ["--data-dir", str(data), *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)


def kb_apart(data: Path, *args: str) -> subprocess.CompletedProcess:
    """`kb ARGS` in its own process: if the embedded index crashed it (SIGBUS), only that process dies."""
    return subprocess.run([sys.executable, "-m", "kb.cli", *args], env=env_for(data), capture_output=True,
                          text=True, timeout=300)


def fill(disk: Path, leave_free: int) -> None:
    """Take the disk's space, except `leave_free` bytes, with one more file."""
    with open(disk / f"filler-{len(list(disk.glob('filler-*')))}", "wb") as out:
        os.posix_fallocate(out.fileno(), 0, max(1, shutil.disk_usage(disk).free - leave_free))


def assert_one_clear_line(result: subprocess.CompletedProcess, reason: str) -> None:
    assert result.returncode == 1, (result.returncode, result.stderr)  # not -7: no SIGBUS
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and reason in result.stderr, result.stderr


def test_a_disk_that_fills_up_during_an_ingest(tmp_path: Path, mounts: list[Path], cli_env):
    disk = tmp_path / "disk"
    disk.mkdir()
    mount("-t", "tmpfs", "-o", "size=128m", "tmpfs", str(disk))
    mounts.append(disk)
    data = disk / "kb"
    before = tmp_path / "before"
    write(before, "leave.md", LEAVE)
    write(before, "travel.md", TRAVEL)
    for _ in range(2):  # a first reopen of the shard fills in part of its files: let it happen with room to spare
        kb = KnowledgeBase(load_settings(data_dir=data))
        assert kb.take_queue()
        ingest(kb, before)
        kb.close()

    folder = tmp_path / "new"
    write(folder, "a-note.md", "# Note A\n\nParking permits are issued by the front desk.\n")
    write(folder, "b-archive.md", "# Archive\n\n" + "Old minutes of the board meeting. " * 100_000)  # 3.4 MB
    write(folder, "c-note.md", "# Note C\n\nThe canteen opens at eight.\n")
    fill(disk, leave_free=MIN_FREE_BYTES + 2**20)  # 1 MB more than kb keeps free: b-archive will not fit
    result = kb_apart(data, "ingest", str(folder))
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    outcomes = {line.split()[1].rstrip(":"): line.split()[0] for line in result.stdout.splitlines()}
    assert outcomes == {"a-note.md": "ok", "b-archive.md": "failed", "c-note.md": "ok"}
    assert "failed b-archive.md: " in result.stdout
    assert "no space left on the disk holding the data directory" in result.stdout

    fill(disk, leave_free=10 * 2**20)  # room for the catalog, not for opening the index safely
    assert_one_clear_line(kb_apart(data, "search", "leave"), "no space left on the disk holding the data directory")
    fill(disk, leave_free=0)  # completely full: not even the catalog can be opened
    assert_one_clear_line(kb_here(data, "ingest", str(folder / "c-note.md")), "no space left on the disk")
    assert_one_clear_line(kb_here(data, "docs"), "no space left on the disk")

    for filler in disk.glob("filler-*"):  # space again: everything that was indexed is still there
        filler.unlink()
    assert not list((data / "originals").glob(".incoming-*"))
    with sqlite3.connect(data / "catalog.sqlite3") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    kb = KnowledgeBase(load_settings(data_dir=data))
    try:
        assert kb.take_queue()
        assert_catalog_and_index_agree(kb)
        assert kb.search("annual leave", actor=LOCAL_ADMIN)[0].chunk.source == "leave.md"
        documents = kb.documents(actor=LOCAL_ADMIN)
        assert {d.name: d.status for d in documents} == {
            "leave.md": "ok", "travel.md": "ok", "a-note.md": "ok", "c-note.md": "ok",
        }
        # the file that did not fit is a failed upload, with its reason, not a document
        (attempt,) = kb.failed_attempts(actor=LOCAL_ADMIN)
        assert attempt.name == "b-archive.md" and "no space left" in attempt.reason
        stored = {p.name for p in (data / "originals").glob("??/*")}
        assert stored == {d.sha256 for d in documents if d.status == "ok"}  # nothing of the archive was kept
    finally:
        kb.close()


def test_a_disk_another_process_fills_during_an_ingest_is_one_line_and_loses_nothing(
    tmp_path: Path, mounts: list[Path], cli_env, monkeypatch: pytest.MonkeyPatch
):
    """Found: when the disk filled up under someone else's writes after kb's own checks passed, saving
    the index as `kb ingest` ended printed a traceback from the engine's flush."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mount("-t", "tmpfs", "-o", "size=128m", "tmpfs", str(disk))
    mounts.append(disk)
    data = disk / "kb"
    folder = tmp_path / "docs"
    for i in range(20):
        write(folder, f"note-{i}.md", f"# Note {i}\n\n" + f"Parking permit rule {i} applies to visitors. " * 200)
    work_queue = KnowledgeBase.work_queue

    def work_then_someone_fills_the_disk(self, *args, **kwargs):
        worked = work_queue(self, *args, **kwargs)
        if worked:
            fill(disk, leave_free=0)
        return worked

    monkeypatch.setattr(KnowledgeBase, "work_queue", work_then_someone_fills_the_disk)
    result = kb_here(data, "ingest", str(folder))
    assert "Traceback" not in result.stderr
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "no space left on the disk holding the data directory" in result.stderr
    assert sum(line.startswith("ok ") for line in result.stdout.splitlines()) == 20

    for filler in disk.glob("filler-*"):
        filler.unlink()
    kb = KnowledgeBase(load_settings(data_dir=data))
    try:
        assert kb.take_queue()
        assert_catalog_and_index_agree(kb)
        assert kb.search("parking permit rule 7", actor=LOCAL_ADMIN)
    finally:
        kb.close()


def test_a_read_only_data_directory_is_one_clear_line(tmp_path: Path, mounts: list[Path], cli_env):
    data = tmp_path / "data"
    write(tmp_path / "docs", "leave.md", LEAVE)
    kb = KnowledgeBase(load_settings(data_dir=data))
    assert kb.take_queue()
    ingest(kb, tmp_path / "docs")
    kb.close()
    read_only = tmp_path / "read-only"
    read_only.mkdir()
    mount("--bind", str(data), str(read_only))
    mounts.append(read_only)
    mount("-o", "remount,bind,ro", str(read_only))

    with pytest.raises(DataDirError, match=f"the data directory {read_only} is read-only"):
        KnowledgeBase(load_settings(data_dir=read_only))
    for command in (["search", "leave"], ["docs"], ["ingest", str(tmp_path / "docs" / "leave.md")]):
        assert_one_clear_line(kb_here(read_only, *command), f"the data directory {read_only} is read-only")
    assert kb_here(data, "search", "leave").returncode == 0  # the same files, writable, as before
