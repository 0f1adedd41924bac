import sqlite3
import threading
from pathlib import Path

from kb.catalog import MAX_ATTEMPTS, SCHEMA_VERSION, SqliteCatalog, doc_id_for
from kb.records import Document, Job


def make_doc(name: str = "a.md", sha: str = "1" * 64) -> Document:
    return Document(doc_id=doc_id_for(name), name=name, version=0, status="failed", sha256=sha, size=10, kind="md")


def test_version_lifecycle(tmp_path: Path):
    cat = SqliteCatalog(tmp_path / "c.db")
    doc = make_doc()
    assert cat.next_version(doc.doc_id) == 1
    cat.begin_version(doc, 1)
    assert cat.versions_in_progress() == [(doc.doc_id, 1)]
    assert cat.serving([doc.doc_id]) == {}  # not served until committed
    cat.commit_version(doc.doc_id, 1, pages=3, chunks=7)
    served = cat.named("a.md")[0]
    assert served and served.status == "ok" and served.version == 1 and served.chunks == 7 and served.pages == 3
    assert cat.serving([doc.doc_id]) == {doc.doc_id: (1, ())}

    new = make_doc(sha="2" * 64)
    assert cat.next_version(doc.doc_id) == 2
    cat.begin_version(new, 2)
    cat.commit_version(doc.doc_id, 2, pages=None, chunks=2)
    current = cat.document(doc.doc_id)
    assert current and current.version == 2 and current.sha256 == "2" * 64
    assert cat.versions_in_progress() == []


def test_failure_keeps_the_serving_version(tmp_path: Path):
    cat = SqliteCatalog(tmp_path / "c.db")
    doc = make_doc()
    cat.begin_version(doc, 1)
    cat.commit_version(doc.doc_id, 1, pages=1, chunks=1)
    upload = Job(id=7, kind="ingest", name="a.md", blob="3" * 64, size=10, uploader="ann")
    cat.record_failure(make_doc(sha="3" * 64), "password-protected", upload)
    kept = cat.document(doc.doc_id)
    assert kept and kept.status == "ok" and kept.version == 1 and kept.error == "password-protected"
    assert [d.doc_id for d in cat.served_documents()] == [doc.doc_id]  # still a document, with the warning

    cat.record_failure(make_doc("b.pdf"), "file is damaged", Job(id=8, kind="ingest", name="b.pdf", uploader="bo"))
    assert cat.named("b.pdf") == []  # a failed upload is not a document...
    attempts = {a.name: a for a in cat.failed_attempts()}  # ...but a failed attempt
    assert attempts["b.pdf"].reason == "file is damaged" and attempts["b.pdf"].doc_id == "" and attempts["b.pdf"].uploader == "bo"
    assert attempts["a.md"].doc_id == doc.doc_id and attempts["a.md"].blob == "3" * 64
    cat.record_attempt(upload, "again")  # once per job
    assert len(cat.failed_attempts()) == 2


def test_an_aborted_first_version_leaves_no_document_behind(tmp_path: Path):
    cat = SqliteCatalog(tmp_path / "c.db")
    doc = make_doc("new.pdf")
    cat.begin_version(doc, 1, job_id=3)
    cat.abort_version(doc.doc_id, 1, "the index refused it", Job(id=3, kind="ingest", name="new.pdf", blob=doc.sha256))
    assert cat.documents() == [] and cat.versions(doc.doc_id) == []
    (attempt,) = cat.failed_attempts()
    assert (attempt.name, attempt.reason, attempt.blob, attempt.doc_id) == ("new.pdf", "the index refused it", doc.sha256, "")
    assert cat.remove_attempt(attempt.id) == [doc.sha256] and cat.failed_attempts() == []  # nothing else uses it


def test_a_catalog_of_schema_3_moves_failed_uploads_out_of_the_documents(tmp_path: Path):
    path = tmp_path / "c.sqlite3"
    cat = SqliteCatalog(path)
    good, reparse = make_doc("good.md"), make_doc("old.pdf", sha="5" * 64)
    for d in (good, reparse):
        cat.begin_version(d, 1)
        cat.commit_version(d.doc_id, 1, None, 2)
    cat.unserve(reparse.doc_id, "re-index: damaged")
    cat.close()
    db = sqlite3.connect(path)  # as an earlier release left it: failures were version-0 documents
    db.executescript(
        "DROP TABLE failed_attempts; PRAGMA user_version = 3;"
        " INSERT INTO documents (doc_id, name, version, status, sha256, size, error, uploader, groups, owner,"
        " created_at, updated_at) VALUES ('f1', 'song.wav', 0, 'failed', '6666', 9, 'unsupported file type', 'ann',"
        " '[]', 'ann', '2026-01-01', '2026-01-02');"
    )
    db.close()
    cat = SqliteCatalog(path)
    assert [d.name for d in cat.served_documents()] == ["good.md"]
    attempts = {a.name: a for a in cat.failed_attempts()}
    assert attempts["song.wav"].reason == "unsupported file type" and attempts["song.wav"].uploader == "ann"
    assert attempts["song.wav"].doc_id == "" and cat.document("f1") is None
    assert attempts["old.pdf"].doc_id == reparse.doc_id  # a document a re-index lost keeps its history
    assert cat.document(reparse.doc_id) is not None
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_remove_document_returns_only_unreferenced_blobs(tmp_path: Path):
    cat = SqliteCatalog(tmp_path / "c.db")
    shared = "4" * 64
    for name in ("a.md", "b.md"):
        doc = make_doc(name, sha=shared)
        cat.begin_version(doc, 1)
        cat.commit_version(doc.doc_id, 1, None, 1)
    assert cat.remove_document(doc_id_for("a.md")) == []
    assert cat.remove_document(doc_id_for("b.md")) == [shared]
    assert cat.documents() == []


def test_queue_claims_each_job_once_across_threads(tmp_path: Path):
    cat = SqliteCatalog(tmp_path / "c.db")
    ids = [cat.enqueue(Job(id=0, kind="ingest", name=f"f{i}")) for i in range(40)]
    claimed: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        other = SqliteCatalog(tmp_path / "c.db")  # a second connection, as another process would have
        while (job := other.claim_next()) is not None:
            other.finish(job.id, "ok", "")
            with lock:
                claimed.append(job.id)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == ids
    assert all(j.status == "done" for j in cat.jobs(ids))
    assert cat.queued_count() == 0


def test_interrupted_jobs_are_requeued_then_failed(tmp_path: Path):
    cat = SqliteCatalog(tmp_path / "c.db")
    job_id = cat.enqueue(Job(id=0, kind="ingest", name="crashy.pdf"))
    for _ in range(MAX_ATTEMPTS):
        assert cat.claim_next().id == job_id  # the worker "dies" while running it
        cat.requeue_interrupted()
    (job,) = cat.jobs([job_id])
    assert job.status == "done" and job.outcome == "failed" and "stopped" in job.message


def test_meta(tmp_path: Path):
    cat = SqliteCatalog(tmp_path / "c.db")
    assert cat.get_meta("x", "d") == "d"
    cat.set_meta("x", "1")
    assert SqliteCatalog(tmp_path / "c.db").get_meta("x") == "1"


def test_progress_is_kept_with_the_job_for_any_process_to_read(tmp_path: Path):
    path = tmp_path / "c.sqlite3"
    worker = SqliteCatalog(path)
    job_id = worker.enqueue(Job(id=0, kind="reindex"))
    worker.claim_next()
    worker.set_progress(job_id, 3, 10)
    other = SqliteCatalog(path)  # another process's view (the app while `kb worker` re-indexes)
    (job,) = other.jobs([job_id])
    assert (job.status, job.done, job.total) == ("running", 3, 10)
    assert other.unfinished("reindex") == job
    worker.finish(job_id, "ok", "re-indexed")
    assert other.unfinished("reindex") is None


def test_an_unfinished_job_is_found_however_many_jobs_came_after_it(tmp_path: Path):
    catalog = SqliteCatalog(tmp_path / "c.sqlite3")
    first = catalog.enqueue(Job(id=0, kind="reindex"))
    for n in range(30):
        catalog.enqueue(Job(id=0, kind="ingest", name=f"f{n}.txt"))
    found = catalog.unfinished("reindex")
    assert found is not None and found.id == first


def test_a_catalog_of_schema_1_gains_job_progress(tmp_path: Path):
    path = tmp_path / "c.sqlite3"
    SqliteCatalog(path).close()
    db = sqlite3.connect(path)  # make it look like a catalog written before progress was kept
    db.executescript(
        "CREATE TABLE jobs_old AS SELECT id, kind, name, blob, size, uploader, groups, status, outcome, message,"
        " attempts, created_at, finished_at, doc_id, actor_groups, actor_admin FROM jobs;"
        " DROP TABLE jobs; ALTER TABLE jobs_old RENAME TO jobs; PRAGMA user_version = 1;"
        " INSERT INTO jobs (id, kind, name, blob, size, uploader, groups, status, outcome, message, attempts,"
        " created_at, finished_at, doc_id, actor_groups, actor_admin)"
        " VALUES (1, 'ingest', 'a.txt', '', 0, '', 'null', 'queued', '', '', 0, '2026-01-01', '', '', '[]', 0);"
    )
    db.close()
    catalog = SqliteCatalog(path)
    (job,) = catalog.recent_jobs()
    assert (job.name, job.done, job.total) == ("a.txt", 0, 0)
    catalog.set_progress(job.id, 1, 2)
    assert catalog.jobs([job.id])[0].done == 1
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_dismissing_the_last_attempt_clears_the_warning_or_gives_up_a_document_that_serves_nothing(tmp_path: Path):
    cat = SqliteCatalog(tmp_path / "c.db")
    served, lost = make_doc("a.md"), make_doc("lost.pdf", sha="7" * 64)
    for d in (served, lost):
        cat.begin_version(d, 1)
        cat.commit_version(d.doc_id, 1, None, 1)
    cat.record_failure(served, "damaged", Job(id=1, kind="ingest", name="a.md", blob="8" * 64))
    cat.unserve(lost.doc_id, "re-index: damaged")  # serves nothing now: not a document, a failed attempt
    assert [d.name for d in cat.served_documents()] == ["a.md"]
    attempts = {a.name: a for a in cat.failed_attempts()}
    assert cat.remove_attempt(attempts["a.md"].id) == ["8" * 64]
    assert cat.document(served.doc_id).error == ""  # the warning goes with its last attempt
    assert cat.remove_attempt(attempts["lost.pdf"].id, drop_husk=True) == ["7" * 64]
    assert cat.document(lost.doc_id) is None and cat.failed_attempts() == []
