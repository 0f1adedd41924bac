"""Feedback: stored in the catalog with what was asked, answered and cited; exported as safe CSV."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from kb.auth import LOCAL_ADMIN, Actor
from kb.catalog import SqliteCatalog
from kb.config import load_settings
from kb.feedback import BadFeedback, feedback_for, to_csv
from kb.records import Answer, Chunk, Citation, Passage
from kb.service import KnowledgeBase


def answer() -> Answer:
    chunk = Chunk(chunk_id="d1:1:0", doc_id="d1", version=1, seq=0, source="leave.md", text="Use the HR portal.")
    passage = Passage(chunk, score=1.5, rank=1)
    citations = [Citation(1, passage)]
    return Answer(text="Use the HR portal [1].", mode="extractive", citations=citations, passages=[passage])


def test_feedback_is_stored_and_a_later_click_updates_it(tmp_path: Path):
    catalog = SqliteCatalog(tmp_path / "catalog.sqlite3")
    first = catalog.save_feedback(feedback_for(answer(), "How?", "How do I request leave?", "ann", 1))
    again = catalog.save_feedback(feedback_for(answer(), "How?", "How do I request leave?", "ann", -1, "old", first))
    assert again == first
    (stored,) = catalog.feedback()
    assert (stored.rating, stored.comment, stored.chunk_ids) == (-1, "old", ("d1:1:0",))
    assert stored.query == "How do I request leave?"
    assert stored.created_at and stored.mode == "extractive"
    # someone else cannot change ann's feedback by guessing its id: theirs is stored apart
    other = catalog.save_feedback(feedback_for(answer(), "How?", "How?", "bob", 1, "", first))
    assert other != first and catalog.feedback()[1].user == "ann"
    catalog.close()


def test_bad_ratings_and_long_comments_are_refused():
    with pytest.raises(BadFeedback, match="rating is 1"):
        feedback_for(answer(), "q", "q", "ann", 0)
    with pytest.raises(BadFeedback, match="longer than"):
        feedback_for(answer(), "q", "q", "ann", 1, "x" * 5000)


def test_csv_export_has_every_field_and_no_spreadsheet_formulas(tmp_path: Path):
    kb = KnowledgeBase(load_settings(env={}, secrets_file=tmp_path / "none.toml", data_dir=tmp_path / "data"))
    try:
        kb.record_feedback(Actor(name="ann"), "=HYPERLINK(\"http://evil\")", "q", answer(), -1, "+1 more, please")
        rows = list(csv.DictReader(io.StringIO(kb.feedback_csv(LOCAL_ADMIN))))
    finally:
        kb.close()
    (row,) = rows
    assert row["question"] == "'=HYPERLINK(\"http://evil\")" and row["comment"] == "'+1 more, please"
    assert row["rating"] == "-1" and row["user"] == "ann" and row["cited_chunk_ids"] == "d1:1:0"
    assert row["answer"] == "Use the HR portal [1]." and row["created_at"]
    assert to_csv([]).strip() == "id,created_at,user,rating,comment,question,query,answer,cited_chunk_ids,mode"
