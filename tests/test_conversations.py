"""Conversations kept in the catalog: a turn's answer comes back exactly as shown, each user sees only their own,
and an answer showing a document its user may no longer see is withheld when the conversation is reopened."""

from pathlib import Path

import pytest

from kb.auth import Actor
from kb.conversations import answer_from_json, answer_to_json, title_for
from kb.errors import BadRequest
from kb.records import Chunk, TableSpan, Turn
from kb.service import KnowledgeBase
from test_service import LEAVE, TRAVEL, ingest, kb, write  # noqa: F401 (fixture)

ALEX = Actor("alex@example.com")
SAM = Actor("sam@example.com")


def test_a_stored_answer_reads_back_with_its_chunks_claims_and_pages(kb: KnowledgeBase, tmp_path: Path):
    ingest(kb, write(tmp_path, "leave.md", LEAVE))
    answer = kb.ask("How do I request annual leave?", actor=ALEX)
    assert answer.citations and answer.claims
    stored = answer_from_json(answer_to_json(answer))
    assert stored.passages == [] and answer.passages  # what is shown, no more
    stored.passages = answer.passages
    assert stored == answer
    table = Chunk("d:1:0", "d", 1, 0, "t.xlsx", "a b\n1 2", page_start=3, page_end=4, page_starts=((0, 3), (4, 4)),
                  tables=(TableSpan(0, 7, (("a", "b"), ("1", "2")), True),), section_starts=((0, "Sheet1"),))
    answer.citations[0] = type(answer.citations[0])(1, type(answer.citations[0].passage)(table, 0.5, 1, 4))
    assert answer_from_json(answer_to_json(answer)).citations[0].passage.chunk == table


def test_each_user_has_their_own_conversations(kb: KnowledgeBase, tmp_path: Path):
    ingest(kb, write(tmp_path, "leave.md", LEAVE))
    question = "How do I request annual leave?"
    mine = kb.start_conversation(question, actor=ALEX)
    kb.add_turn(mine, Turn("t1", question, question, kb.ask(question, actor=ALEX)), actor=ALEX)
    assert [(c.title, c.turns) for c in kb.conversations(actor=ALEX)] == [(question, 1)]
    assert kb.conversations(actor=SAM) == []
    for refused in (
        lambda: kb.conversation_turns(mine, actor=SAM),
        lambda: kb.add_turn(mine, Turn("t2", "x", "x", kb.ask("x", actor=SAM)), actor=SAM),
        lambda: kb.rename_conversation(mine, "mine now", actor=SAM),
        lambda: kb.delete_conversation(mine, actor=SAM),
        lambda: kb.conversation_turns("no-such-id", actor=ALEX),
    ):
        with pytest.raises(BadRequest, match="no conversation"):
            refused()
    with pytest.raises(BadRequest, match="needs a name"):
        kb.rename_conversation(mine, "   ", actor=ALEX)
    kb.rename_conversation(mine, "  Annual\nleave  ", actor=ALEX)
    assert kb.conversations(actor=ALEX)[0].title == "Annual leave"
    kb.delete_conversation(mine, actor=ALEX)
    assert kb.conversations(actor=ALEX) == [] and kb.catalog.turn_rows(mine) == []
    assert len(kb.audit(Actor("local", local=True))) == 0  # kb.ask alone records nothing: the app records


def test_an_answer_from_a_document_its_user_may_no_longer_see_is_withheld(kb: KnowledgeBase, tmp_path: Path):
    ingest(kb, write(tmp_path, "leave.md", LEAVE), write(tmp_path, "travel.md", TRAVEL))
    conversation = kb.start_conversation("leave", actor=ALEX)
    for n, question in enumerate(["How do I request annual leave?", "Which receipts do travel claims need?"]):
        kb.add_turn(conversation, Turn(f"t{n}", question, question, kb.ask(question, actor=ALEX)), actor=ALEX)
    leave = kb.catalog.named("leave.md")[0]
    kb.catalog.set_groups(leave.doc_id, ("hr",))
    first, second = kb.conversation_turns(conversation, actor=ALEX)
    assert first.withheld and first.answer.text == "" and not first.answer.citations
    assert first.question == "How do I request annual leave?"  # their own words stay
    assert not second.withheld and "receipt" in second.answer.text
    hr = Actor("alex@example.com", groups=("hr",))
    assert not kb.conversation_turns(conversation, actor=hr)[0].withheld


def test_a_title_is_the_first_question_on_one_line_cut_at_a_word():
    assert title_for("How do I\nrequest leave?") == "How do I request leave?"
    long = title_for("word " * 40)
    assert long.endswith("…") and len(long) <= 81 and "wor…" not in long
