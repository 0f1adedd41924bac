"""The streamed ingest wired into JobRunner.ingest: failures midway and crashes leave no half version behind."""

from dataclasses import replace
from pathlib import Path

from test_service import LEAVE, TRAVEL, ingest, kb, write  # noqa: F401  (kb is a fixture)

from kb.auth import LOCAL_ADMIN
from kb.catalog import doc_id_for
from kb.chunking import chunk_document
from kb.config import load_settings
from kb.parsing import parse_file
from kb.service import KnowledgeBase


def test_a_streamed_ingest_indexes_what_chunk_document_makes(kb, tmp_path: Path):
    path = write(tmp_path, "leave.md", LEAVE * 40)
    kb.sandbox.batch_elements = 3
    assert ingest(kb, path)["leave.md"][0] == "ok"
    expected = chunk_document(parse_file(path, "leave.md"), doc_id=doc_id_for("leave.md"), version=1,
                              source="leave.md", target_words=kb.settings.chunk_words)
    doc = kb.catalog.named("leave.md")[0]
    expected = [replace(c, doc_id=doc.doc_id) for c in expected]  # document ids are random
    assert doc.chunks == len(expected) == kb.index.count()
    assert kb.index.document_versions() == {doc.doc_id: {1}}


def test_a_helper_dying_midway_fails_the_version_and_the_old_one_keeps_serving(kb, tmp_path: Path):
    path = write(tmp_path, "leave.md", LEAVE)
    ingest(kb, path)
    path.write_text(LEAVE * 400)  # far more than a pipe holds, in many small batches
    kb.sandbox.batch_elements = 2
    encode = kb.serving.encode

    def encode_then_kill(chunks, into=None):
        if kb.sandbox._helper is not None:
            kb.sandbox._helper.kill()
        return encode(chunks, into)

    kb.serving.encode = encode_then_kill
    outcome, message = ingest(kb, path)["leave.md"]
    kb.serving.encode = encode
    assert outcome == "failed" and "the reader crashed" in message
    doc = kb.catalog.named("leave.md")[0]
    assert doc.status == "ok" and doc.version == 1
    assert kb.index.document_versions() == {doc.doc_id: {1}}  # the new version's batches were removed
    assert kb.search("sick leave doctor's note", actor=LOCAL_ADMIN)[0].chunk.source == "leave.md"


def test_a_version_cut_short_by_a_crash_is_removed_at_the_next_start(tmp_path: Path):
    settings = load_settings(env={}, secrets_file=tmp_path / "none.toml", data_dir=tmp_path / "data")
    first = KnowledgeBase(settings)
    assert first.take_queue()
    ingest(first, write(tmp_path, "travel.md", TRAVEL))
    doc = first.catalog.named("travel.md")[0]
    # the process dies after a few batches of version 2 went in, before the catalog committed it
    parsed = parse_file(write(tmp_path, "travel2.md", TRAVEL + "\n\nNew rules apply from May."), "travel2.md")
    half = chunk_document(parsed, doc_id=doc.doc_id, version=2, source="travel.md")
    first.catalog.begin_version(doc, 2)
    first.index.upsert(first.serving.encode(half))
    assert first.index.document_versions() == {doc.doc_id: {1, 2}}
    first.close()

    second = KnowledgeBase(settings)
    try:
        assert second.take_queue()
        assert second.index.document_versions() == {doc.doc_id: {1}}
        assert second.catalog.named("travel.md")[0].version == 1
    finally:
        second.close()
