"""The whole pipeline through KnowledgeBase, offline: ingest, versions, search, ask, delete, re-index, recovery."""

from pathlib import Path

import pytest

from kb.auth import LOCAL_ADMIN
from kb.config import load_settings
from kb.service import KnowledgeBase
from kb.storage import DataDirError

LEAVE = """# Leave policy

## Requesting leave

To request annual leave, submit a request in the HR portal at least two weeks in advance.
Your manager approves or declines the request within three working days.

## Sick leave

If you are ill, tell your manager before 10am on the first day of absence.
A doctor's note is needed after five consecutive days of sick leave.
"""

TRAVEL = """# Travel policy

Book all business travel through the travel desk. Economy class is the default for flights under six hours.
Keep every receipt: expenses are reimbursed within 30 days of submitting the claim.
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture()
def kb(tmp_path: Path):
    settings = load_settings(env={}, secrets_file=tmp_path / "none.toml", data_dir=tmp_path / "data")
    base = KnowledgeBase(settings)
    assert base.take_queue()
    yield base
    base.close()


def ingest(kb: KnowledgeBase, *paths: Path) -> dict[str, tuple[str, str]]:
    results: dict[str, tuple[str, str]] = {}
    submitted = kb.submit_paths(paths)
    kb.work_queue()
    for job in kb.catalog.jobs([s.job_id for s in submitted]):
        results[job.name] = (job.outcome, job.message)
    return results


def test_ingest_search_and_ask(kb: KnowledgeBase, tmp_path: Path):
    folder = tmp_path / "handbook"
    write(folder, "policies/leave.md", LEAVE)
    write(folder, "policies/travel.md", TRAVEL)
    results = ingest(kb, folder)
    assert results["policies/leave.md"][0] == "ok"
    assert results["policies/travel.md"][0] == "ok"

    passages = kb.search("how do I request annual leave", k=3, actor=LOCAL_ADMIN)
    assert passages[0].chunk.source == "policies/leave.md"
    assert [p.rank for p in passages] == list(range(1, len(passages) + 1))

    answer = kb.ask("How do I request annual leave?", actor=LOCAL_ADMIN)
    assert answer.found and answer.mode == "extractive"
    assert "HR portal" in answer.text
    assert answer.citations and answer.citations[0].passage.chunk.source == "policies/leave.md"
    assert f"[{answer.citations[0].n}]" in answer.text

    nothing = kb.ask("What is the capital of Mongolia?", actor=LOCAL_ADMIN)
    assert not nothing.found and not nothing.citations


def test_identical_bytes_are_unchanged_and_new_bytes_replace_the_old_version(kb: KnowledgeBase, tmp_path: Path):
    path = write(tmp_path, "leave.md", LEAVE)
    assert ingest(kb, path)["leave.md"][0] == "ok"
    assert ingest(kb, path)["leave.md"] == ("unchanged", "already indexed (version 1)")

    write(tmp_path, "leave.md", LEAVE.replace("two weeks", "four weeks"))
    assert ingest(kb, path)["leave.md"][0] == "ok"
    doc = kb.catalog.named("leave.md")[0]
    assert doc and doc.version == 2
    assert kb.index.document_versions() == {doc.doc_id: {2}}
    texts = " ".join(p.chunk.text for p in kb.search("request annual leave advance", k=10, actor=LOCAL_ADMIN))
    assert "four weeks" in texts and "two weeks" not in texts


def test_a_bad_file_fails_with_a_reason_and_the_rest_go_in(kb: KnowledgeBase, tmp_path: Path):
    folder = tmp_path / "mixed"
    write(folder, "leave.md", LEAVE)
    (folder / "broken.pdf").write_bytes(b"%PDF-1.7\n this is not really a pdf")
    (folder / "empty.txt").write_bytes(b"")
    results = ingest(kb, folder)
    assert results["leave.md"][0] == "ok"
    for name in ("broken.pdf", "empty.txt"):
        outcome, reason = results[name]
        assert outcome == "failed" and reason and "\n" not in reason and "Traceback" not in reason
    assert kb.catalog.named("broken.pdf") == []  # a failed upload is not a document
    attempts = {a.name: a for a in kb.failed_attempts(actor=LOCAL_ADMIN)}
    assert attempts["broken.pdf"].reason == results["broken.pdf"][1] and attempts["broken.pdf"].kept
    assert [d.name for d in kb.documents(actor=LOCAL_ADMIN)] == ["leave.md"]


def test_a_failed_new_version_keeps_the_old_one_serving(kb: KnowledgeBase, tmp_path: Path):
    path = write(tmp_path, "leave.md", LEAVE)
    ingest(kb, path)
    path.write_bytes(b"")
    assert ingest(kb, path)["leave.md"][0] == "failed"
    doc = kb.catalog.named("leave.md")[0]
    assert doc and doc.status == "ok" and doc.version == 1 and doc.error
    assert kb.search("sick leave doctor's note", actor=LOCAL_ADMIN)[0].chunk.source == "leave.md"


def test_oversized_file_is_refused_before_it_is_stored(tmp_path: Path):
    settings = load_settings(env={}, secrets_file=tmp_path / "none.toml", data_dir=tmp_path / "data", max_file_mb=0.001)
    kb = KnowledgeBase(settings)
    try:
        path = write(tmp_path, "big.txt", "word " * 1000)
        outcome, reason = ingest(kb, path)["big.txt"]
        assert outcome == "failed" and "over the 0.001 MB limit" in reason
        assert kb.blobs.size_bytes() == 0
    finally:
        kb.close()


def test_delete_removes_chunks_catalog_entry_and_original(kb: KnowledgeBase, tmp_path: Path):
    ingest(kb, write(tmp_path, "leave.md", LEAVE), write(tmp_path, "travel.md", TRAVEL))
    doc = kb.catalog.named("leave.md")[0]
    kb.submit_delete(doc.doc_id, LOCAL_ADMIN)
    kb.work_queue()
    assert kb.catalog.named("leave.md") == []
    assert doc.doc_id not in kb.index.document_versions()
    assert not kb.blobs.exists(doc.sha256)
    assert all(p.chunk.source == "travel.md" for p in kb.search("leave request manager", actor=LOCAL_ADMIN))


def test_reindex_rebuilds_from_originals_and_swaps(kb: KnowledgeBase, tmp_path: Path):
    ingest(kb, write(tmp_path, "leave.md", LEAVE), write(tmp_path, "travel.md", TRAVEL))
    before = kb.index.count()
    old_index = kb.index
    kb.submit_reindex(LOCAL_ADMIN)
    kb.work_queue()
    assert kb.index is not old_index
    assert kb.index.count() == before
    assert kb.index.unoptimized == 0  # optimized before it was swapped in
    assert kb.catalog.get_meta("last_reindex")
    assert kb.search("receipts reimbursed", actor=LOCAL_ADMIN)[0].chunk.source == "travel.md"


def test_recovery_drops_orphans_and_requeues_interrupted_jobs(tmp_path: Path):
    settings = load_settings(env={}, secrets_file=tmp_path / "none.toml", data_dir=tmp_path / "data")
    first = KnowledgeBase(settings)
    assert first.take_queue()
    ingest(first, write(tmp_path, "leave.md", LEAVE))
    # A crash after the index took a document but before the catalog learnt of it leaves an orphan;
    # a crash while a job runs leaves it 'running'.
    orphan = first.catalog.named("leave.md")[0]
    first.catalog.remove_document(orphan.doc_id)
    submitted = first.submit_paths([write(tmp_path, "travel.md", TRAVEL)])
    assert first.catalog.claim_next().id == submitted[0].job_id
    first.close()

    second = KnowledgeBase(settings)
    try:
        assert second.take_queue()
        assert orphan.doc_id not in second.index.document_versions()
        (job,) = second.catalog.jobs([submitted[0].job_id])
        assert job.status == "queued"
        second.work_queue()
        assert second.catalog.named("travel.md")[0].status == "ok"
    finally:
        second.close()


def test_a_second_process_cannot_take_the_queue_while_one_holds_it(kb: KnowledgeBase, tmp_path: Path):
    other = KnowledgeBase(kb.settings)
    try:
        assert not other.take_queue()
        submitted = other.submit_paths([write(tmp_path, "leave.md", LEAVE)])
        assert other.work_queue() == 0
        kb.work_queue()  # the holder does the work
        assert other.catalog.jobs([submitted[0].job_id])[0].outcome == "ok"
    finally:
        other.close()
    assert kb.catalog.named("leave.md")[0].status == "ok"


def test_hybrid_search_with_a_dense_model_and_mismatch_reported(tmp_path: Path):
    from tests.tiny_model import MODEL_NAME, build_tiny_model

    model = build_tiny_model(tmp_path / "model")
    hybrid = load_settings(
        env={}, secrets_file=tmp_path / "none.toml", data_dir=tmp_path / "data",
        embedding=f"fastembed:{MODEL_NAME}", embedding_path=str(model),
    )
    kb = KnowledgeBase(hybrid)
    try:
        assert kb.take_queue() and kb.serving.mode == "hybrid"
        ingest(kb, write(tmp_path, "leave.md", LEAVE), write(tmp_path, "travel.md", TRAVEL))
        assert kb.index.spec.dense_model == f"fastembed:{MODEL_NAME}"
        assert kb.search("annual leave request", actor=LOCAL_ADMIN)[0].chunk.source == "leave.md"
    finally:
        kb.close()

    keyword_only = KnowledgeBase(load_settings(env={}, secrets_file=tmp_path / "none.toml", data_dir=tmp_path / "data"))
    try:
        keyword_only.open_index()
        assert keyword_only.serving.mode == "keyword"
        assert any("kb reindex" in w and MODEL_NAME in w for w in keyword_only.warnings)
        assert keyword_only.search("annual leave request", actor=LOCAL_ADMIN)[0].chunk.source == "leave.md"
    finally:
        keyword_only.close()


def test_the_index_is_optimized_on_a_copy_once_enough_chunks_were_added(tmp_path: Path):
    settings = load_settings(env={"KB_OPTIMIZE_AFTER": "2"}, secrets_file=tmp_path / "none.toml", data_dir=tmp_path / "data")
    kb = KnowledgeBase(settings)
    assert kb.take_queue()
    ingest(kb, write(tmp_path, "leave.md", LEAVE))
    first = kb.index
    assert first.unoptimized < 2  # below the threshold: left alone
    ingest(kb, write(tmp_path, "travel.md", TRAVEL))
    assert kb.index is not first and kb.index.unoptimized == 0  # an optimized copy serves now
    assert kb.index.count() == first.count()
    assert kb.search("receipts reimbursed", actor=LOCAL_ADMIN)[0].chunk.source == "travel.md"
    assert not kb.catalog.get_meta("last_reindex")  # optimizing is not a re-index
    kb.close()
    assert [p.name for p in (tmp_path / "data" / "index").glob("gen-*")] == [kb.serving.store.describe()["generation"]]


def test_an_optimize_that_cannot_run_leaves_the_serving_index_alone(tmp_path: Path, monkeypatch, caplog):
    settings = load_settings(env={"KB_OPTIMIZE_AFTER": "1"}, secrets_file=tmp_path / "none.toml", data_dir=tmp_path / "data")
    kb = KnowledgeBase(settings)
    assert kb.take_queue()

    def no_room(index):
        raise DataDirError("the disk under the data directory is full")

    monkeypatch.setattr(kb.serving.store, "compact", no_room)
    outcome = ingest(kb, write(tmp_path, "travel.md", TRAVEL))
    assert list(outcome.values())[0][0] == "ok"
    assert "could not optimize the index: the disk under the data directory is full" in caplog.text
    assert kb.index.unoptimized > 0  # still due: the next ingest tries again
    assert kb.search("receipts reimbursed", actor=LOCAL_ADMIN)[0].chunk.source == "travel.md"
    kb.close()


def test_a_changed_chunk_size_is_reported_until_a_reindex_applies_it(tmp_path: Path):
    def open_kb(**env: str) -> KnowledgeBase:
        base = KnowledgeBase(load_settings(env=env, secrets_file=tmp_path / "none.toml", data_dir=tmp_path / "data"))
        assert base.take_queue()
        return base

    first = open_kb()
    long_section = "# Handbook\n\n" + "\n\n".join(
        f"Rule {n}: keep receipts for every purchase and submit the claim within thirty days." for n in range(50)
    )
    ingest(first, write(tmp_path, "handbook.md", long_section))
    chunks_before = first.index.count()
    first.close()

    smaller = open_kb(KB_CHUNK_WORDS="60")
    assert smaller.warnings == [
        "the index holds chunks of about 300 words but KB_CHUNK_WORDS is 60: new uploads use 60; "
        "re-index to apply it to all"
    ]
    assert smaller.stats()["warnings"] == smaller.warnings
    smaller.submit_reindex(LOCAL_ADMIN)
    smaller.work_queue()
    assert smaller.warnings == []
    assert smaller.index.count() > chunks_before
    smaller.close()


def test_a_file_ingested_just_before_a_crash_is_reported_ok_on_the_rerun(kb: KnowledgeBase, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch):
    """Found: after a crash, the re-run said "unchanged" for files it had really ingested."""
    (submitted,) = kb.submit_paths([write(tmp_path, "leave.md", LEAVE)])
    finish = kb.catalog.finish

    def killed(*args, **kwargs):  # the process dies after the version is committed, before the job is closed
        raise KeyboardInterrupt

    monkeypatch.setattr(kb.catalog, "finish", killed)
    with pytest.raises(KeyboardInterrupt):
        kb.work_queue()
    monkeypatch.setattr(kb.catalog, "finish", finish)
    settings = kb.settings
    kb.close()
    again = KnowledgeBase(settings)
    try:
        assert again.take_queue()  # recovery puts the interrupted job back in the queue
        again.work_queue()
        (job,) = again.catalog.jobs([submitted.job_id])
        assert (job.outcome, job.message.split(", ")[-1]) == ("ok", "version 1")
        assert again.catalog.named("leave.md")[0].version == 1
    finally:
        again.close()
