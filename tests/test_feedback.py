"""Feedback: stored in the catalog with what was asked, answered and cited; exported as safe CSV."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest

from kb.auth import LOCAL_ADMIN, Actor
from kb.catalog import SqliteCatalog
from kb.config import load_settings
from kb.feedback import BadFeedback, feedback_for, spreadsheet_safe, to_csv
from kb.records import Answer, Chunk, Citation, Passage
from kb.service import KnowledgeBase


def answer(text: str = "Use the HR portal [1].") -> Answer:
    chunk = Chunk(chunk_id="d1:1:0", doc_id="d1", version=1, seq=0, source="leave.md", text="Use the HR portal.")
    passage = Passage(chunk, score=1.5, rank=1)
    citations = [Citation(1, passage)]
    return Answer(text=text, mode="extractive", citations=citations, passages=[passage])


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
    assert next(csv.reader(io.StringIO(to_csv([])))) == list(CSV_HEADER)


CSV_HEADER = ("id", "created_at", "user", "rating", "comment", "question", "query", "answer", "cited_chunk_ids", "mode")
FORMULA_START = ("=", "+", "-", "@")
SEPARATORS = (",", ";", "\t", "|")  # what a spreadsheet may pick to split a line
HOSTILE = {
    "comment": "x;=1+1",  # the finding: one cell with ",", two with ";" (European spreadsheets)
    "question": "=cmd|' /C calc'!A0",
    "query": "ok|-2+3\t@SUM(A1)",
    "answer": 'see, "=HYPERLINK(""http://evil"")"; next\n  +1 line\r\n-2',
    "user": ' "@evil", ann',
}


def formula_pieces(text: str) -> list[str]:
    """Every piece of `text` that a spreadsheet could read as a formula, however it splits it: at
    each separator and line break, with the spaces and quotes a reader may trim, unless a number."""
    found = []
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        for separator in SEPARATORS:
            for piece in line.split(separator):
                cell = piece.strip().strip('"').strip()
                if cell.startswith(FORMULA_START) and not re.fullmatch(r"[-+]?\d+(\.\d+)?", cell):
                    found.append(cell)
    return found


def test_no_piece_of_the_csv_is_a_formula_whatever_separator_a_spreadsheet_picks(tmp_path: Path):
    kb = KnowledgeBase(load_settings(env={}, secrets_file=tmp_path / "none.toml", data_dir=tmp_path / "data"))
    try:
        actor = Actor(name=HOSTILE["user"])
        kb.record_feedback(actor, HOSTILE["question"], HOSTILE["query"], answer(HOSTILE["answer"]), -1, HOSTILE["comment"])
        exported = kb.feedback_csv(LOCAL_ADMIN)
    finally:
        kb.close()
    assert formula_pieces("\n".join(HOSTILE.values())), "the test data should hold formulas to defuse"
    assert formula_pieces(exported) == []  # quotes ignored: split the raw text at every separator
    for separator in SEPARATORS:  # quotes honoured: split each cell again at every separator
        for row in csv.reader(io.StringIO(exported, newline=""), delimiter=separator):
            assert all(formula_pieces(cell) == [] for cell in row), (separator, row)
    (row,) = csv.DictReader(io.StringIO(exported, newline=""))  # and every cell is quoted, so "," keeps them whole
    assert exported.splitlines()[1].startswith('"1","') and row["comment"] == "x;'=1+1"
    assert row["question"] == "'=cmd|' /C calc'!A0" and row["rating"] == "-1" and row["user"] == ' "\'@evil", ann'


def test_spreadsheet_safe_changes_only_what_starts_a_piece_and_only_once():
    assert spreadsheet_safe("x;=1+1") == "x;'=1+1"
    assert spreadsheet_safe("a=b, c-d; e@f") == "a=b, c-d; e@f"  # a formula character inside a piece is text
    assert spreadsheet_safe("\t=1") == "\t'=1" and spreadsheet_safe(" -x") == " '-x"
    assert spreadsheet_safe(spreadsheet_safe("=a|@b")) == "'=a|'@b"
    assert spreadsheet_safe(-1) == -1 and spreadsheet_safe(None) is None and spreadsheet_safe("") == ""
