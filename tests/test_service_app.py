"""The KnowledgeBase verbs the app relies on: follow-up questions, health, re-index progress and
settings, originals for download."""

from __future__ import annotations

from pathlib import Path

import pytest

from kb.auth import LOCAL_ADMIN
from kb.config import load_settings
from kb.errors import KbError
from kb.service import KnowledgeBase

LEAVE = "# Leave\n\n" + " ".join(
    f"Rule {i}: annual leave requests go through the HR portal and need manager approval." for i in range(60)
)
HISTORY = [("How do I request annual leave?", "Submit it in the HR portal [1].")]


@pytest.fixture()
def make_kb(tmp_path: Path):
    opened: list[KnowledgeBase] = []

    def make(**env: str) -> KnowledgeBase:
        env = {"KB_DATA_DIR": str(tmp_path / "data"), **env}
        settings = load_settings(env=env, secrets_file=tmp_path / "none.toml")
        kb = KnowledgeBase(settings)
        assert kb.take_queue()
        opened.append(kb)
        return kb

    yield make
    for kb in opened:
        kb.close()


def ingest(kb: KnowledgeBase, tmp_path: Path) -> None:
    path = tmp_path / "leave.md"
    path.write_text(LEAVE)
    kb.submit_paths([path])
    kb.work_queue()


def llm_env(server) -> dict[str, str]:
    return {"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": server.base_url, "KB_LLM_MODEL": "fake-model"}


def test_follow_ups_are_condensed_by_the_llm_and_offline_by_the_previous_topic(make_kb, fake_openai):
    offline = make_kb()
    assert offline.condense("and for part-time staff?", HISTORY) == "and for part-time staff? (request annual leave)"
    assert offline.condense("Who approves expense claims?", HISTORY) == "Who approves expense claims?"
    offline.close()

    fake_openai.reply = "  How do part-time staff request annual leave?\n"
    kb = make_kb(**llm_env(fake_openai))
    assert kb.condense("How do I request leave?", []) == "How do I request leave?"
    assert fake_openai.chat_requests == []  # a first question needs no rewriting
    assert kb.condense("and for part-time staff?", HISTORY) == "How do part-time staff request annual leave?"
    (request,) = fake_openai.chat_requests
    prompt = request["messages"][1]["content"]
    assert "User: How do I request annual leave?" in prompt and "Assistant: Submit it in the HR portal." in prompt
    assert "Last question: and for part-time staff?" in prompt

    fake_openai.failure = "error"
    # the model failed: the previous topic is added offline
    assert kb.condense("and for part-time staff?", HISTORY) == "and for part-time staff? (request annual leave)"


def test_health_reports_each_component_with_the_reason_when_one_is_down(make_kb, fake_openai):
    kb = make_kb(**llm_env(fake_openai), KB_EMBEDDING="fastembed:no/such-model", KB_EMBEDDING_PATH="/nonexistent")
    health = {h.component: h for h in kb.health()}
    assert [h for h in health] == ["index", "catalog", "embedding model", "LLM endpoint"]
    assert health["index"].status == "ok" and "0 chunks" in health["index"].detail
    assert health["catalog"].status == "ok"
    assert health["embedding model"].status == "down" and health["embedding model"].detail
    assert health["LLM endpoint"].status == "ok" and "fake-model" in health["LLM endpoint"].detail
    assert "sk-test" not in repr(health)

    fake_openai.failure = "error"
    llm = next(h for h in kb.health() if h.component == "LLM endpoint")
    assert (llm.status, llm.detail) == ("down", "the server answered HTTP 500")


def test_reindex_shows_progress_while_search_keeps_using_the_old_index(make_kb, tmp_path: Path):
    kb = make_kb()
    ingest(kb, tmp_path)
    serving = kb.index
    job_id = kb.submit_reindex(LOCAL_ADMIN)
    seen: list[tuple[int, int] | None] = []
    answered_from: list[bool] = []

    def progress(done: int, total: int) -> None:
        seen.append(kb.job_progress(job_id))
        answered_from.append(kb.index is serving and kb.ask("How are annual leave requests approved?", actor=LOCAL_ADMIN).found)

    kb.work_queue(progress=progress)
    assert seen == [(1, 2), (2, 2)]  # one document: parsed, then indexed
    assert answered_from == [True, True]  # until the swap, questions are answered from the old index
    assert kb.index is not serving
    assert kb.job_progress(job_id) is None and kb.catalog.jobs([job_id])[0].outcome == "ok"


def test_reindex_applies_a_changed_chunk_size(make_kb, tmp_path: Path):
    kb = make_kb(KB_CHUNK_WORDS="400")
    ingest(kb, tmp_path)
    before = kb.catalog.named("leave.md")[0].chunks
    kb.close()  # restart with a smaller chunk size
    kb = make_kb(KB_CHUNK_WORDS="100")
    assert kb.catalog.named("leave.md")[0].chunks == before  # nothing changes until the re-index
    kb.submit_reindex(LOCAL_ADMIN)
    kb.work_queue()
    after = kb.catalog.named("leave.md")[0].chunks
    assert after > before and kb.index.count() == after


def test_the_original_of_a_passage_can_be_downloaded_until_it_is_deleted(make_kb, tmp_path: Path):
    kb = make_kb()
    ingest(kb, tmp_path)
    passage = kb.search("annual leave", actor=LOCAL_ADMIN)[0]
    name, read = kb.original(passage.chunk.doc_id, actor=LOCAL_ADMIN)
    assert name == "leave.md" and read().decode() == LEAVE
    kb.submit_delete(passage.chunk.doc_id, LOCAL_ADMIN)
    kb.work_queue()
    assert kb.original(passage.chunk.doc_id, actor=LOCAL_ADMIN) is None
    with pytest.raises(KbError, match="no longer there"):  # a download button drawn before: one line, not a traceback
        read()


def test_reindex_progress_reaches_a_process_that_does_not_run_it(make_kb, tmp_path: Path):
    worker = make_kb()  # `kb worker`, holding the queue
    ingest(worker, tmp_path)
    app = KnowledgeBase(worker.settings)  # the app: reads the catalog, cannot take the queue
    try:
        assert not app.take_queue()
        job_id = app.submit_reindex(LOCAL_ADMIN)
        assert app.running_reindex().id == job_id and app.job_progress(job_id) is None  # queued, not started
        seen: list[tuple[int, int] | None] = []
        worker.work_queue(progress=lambda done, total: seen.append(app.job_progress(job_id)))
        assert seen == [(1, 2), (2, 2)]
        assert app.running_reindex() is None and app.jobs([job_id])[0].outcome == "ok"
    finally:
        app.close()


def test_a_running_reindex_is_found_after_many_newer_jobs(make_kb, tmp_path: Path):
    kb = make_kb()
    job_id = kb.submit_reindex(LOCAL_ADMIN)
    for n in range(25):  # uploads queued after it
        (tmp_path / f"note{n}.txt").write_text(f"Note {n} about the office.")
        kb.submit_paths([tmp_path / f"note{n}.txt"])
    assert kb.running_reindex().id == job_id
