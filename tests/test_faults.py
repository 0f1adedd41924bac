"""Faults lose nothing: a process killed mid-ingest or mid-re-index, an unreachable Qdrant server."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kb.config import load_settings
from kb.service import KnowledgeBase
from kb.auth import LOCAL_ADMIN


def env_for(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "KB_QDRANT_URL", "KB_EMBEDDING")}
    return {**env, "KB_DATA_DIR": str(data_dir), **extra}


def make_folder(root: Path, count: int) -> Path:
    root.mkdir(parents=True)
    for i in range(count):
        topic = ["leave", "travel", "payroll", "laptops", "security"][i % 5]
        body = " ".join(f"Policy {i} about {topic}: rule {j} applies to every employee." for j in range(40))
        (root / f"policy-{i:03d}.md").write_text(f"# Policy {i}: {topic}\n\n{body}\n")
    return root


def kill_when(process: subprocess.Popen, ready, timeout_s: float = 120) -> None:
    deadline = time.time() + timeout_s
    while not ready():
        assert process.poll() is None, "the process finished before it could be interrupted"
        assert time.time() < deadline, "timed out waiting for the moment to interrupt"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()


def assert_catalog_and_index_agree(kb: KnowledgeBase) -> None:
    in_index = kb.index.document_versions()
    serving = {d.doc_id: d for d in kb.catalog.documents() if d.status == "ok"}
    assert set(in_index) == set(serving), "a chunk without its document, or a document without its chunks"
    for doc_id, versions in in_index.items():
        assert versions == {serving[doc_id].version}
    total = sum(d.chunks for d in serving.values())
    assert kb.index.count() == total


def open_kb(data_dir: Path, tmp_path: Path) -> KnowledgeBase:
    return KnowledgeBase(load_settings(env={}, secrets_file=tmp_path / "none.toml", data_dir=data_dir))


def test_killed_in_the_middle_of_an_ingest(tmp_path: Path):
    data = tmp_path / "data"
    folder = make_folder(tmp_path / "docs", 60)
    ingest = subprocess.Popen(
        [sys.executable, "-m", "kb.cli", "ingest", str(folder)],
        env=env_for(data), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    watcher = open_kb(data, tmp_path) if (data / "catalog.sqlite3").exists() else None

    def some_done() -> bool:
        nonlocal watcher
        if watcher is None and (data / "catalog.sqlite3").exists():
            watcher = open_kb(data, tmp_path)
        return watcher is not None and sum(j.status == "done" for j in watcher.catalog.recent_jobs(100)) >= 5

    kill_when(ingest, some_done)
    watcher.close()

    kb = open_kb(data, tmp_path)
    try:
        assert kb.take_queue()  # recovery: interrupted jobs back in the queue, orphans removed
        assert_catalog_and_index_agree(kb)
        kb.work_queue()  # the interrupted ingest resumes
        assert_catalog_and_index_agree(kb)
        assert sum(d.status == "ok" for d in kb.documents(actor=LOCAL_ADMIN)) == 60
        assert all(j.status == "done" for j in kb.catalog.recent_jobs(100))
    finally:
        kb.close()


def test_killed_in_the_middle_of_a_reindex_keeps_the_old_index_serving(tmp_path: Path):
    data = tmp_path / "data"
    folder = make_folder(tmp_path / "docs", 150)  # enough that indexing the new generation takes a while
    subprocess.run([sys.executable, "-m", "kb.cli", "ingest", str(folder)], env=env_for(data), check=True,
                   capture_output=True)
    reindex = subprocess.Popen(
        [sys.executable, "-m", "kb.cli", "reindex"], env=env_for(data),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    kill_when(reindex, lambda: (data / "index" / "gen-000002").exists())

    kb = open_kb(data, tmp_path)
    try:
        kb.open_index()  # a reader, without taking the queue: the old generation serves
        assert kb.serving.store.describe()["generation"] == "gen-000001"
        assert kb.search("travel policy rule", actor=LOCAL_ADMIN)[0].chunk.source.startswith("policy-")
        assert kb.take_queue()
        assert_catalog_and_index_agree(kb)
        kb.work_queue()  # the interrupted re-index runs again and completes
        assert kb.serving.store.describe()["generation"] != "gen-000001"
        assert_catalog_and_index_agree(kb)
    finally:
        kb.close()


def test_an_unreachable_qdrant_server_is_one_clear_line(tmp_path: Path):
    result = subprocess.run(
        [sys.executable, "-m", "kb.cli", "search", "leave"],
        env=env_for(tmp_path / "data", KB_QDRANT_URL="http://127.0.0.1:9", KB_TIMEOUT="2"),
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 1
    assert "not reachable" in result.stderr and "127.0.0.1:9" in result.stderr
    assert "Traceback" not in result.stderr
