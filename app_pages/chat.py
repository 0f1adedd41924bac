"""Chat: ask questions, read answers with their numbered passage cards beside them, rate answers.

Everything that comes from documents (passages, extractive answers, LLM answers quoting them) is
shown as inert text: escaped HTML from kb/highlight.py, or Markdown with every character escaped
while an answer streams. Markers [n] in an answer and the cards' numbers are the same numbers.
"""

from __future__ import annotations

import html
import uuid
from dataclasses import dataclass
from pathlib import PurePosixPath

import streamlit as st

from kb.auth import Actor
from kb.feedback import MAX_COMMENT_CHARS
from kb.highlight import answer_html, mark_words, markdown_literal, passage_html, supporting_text
from kb.errors import IndexUnavailable
from kb.records import Answer, Passage
from kb.service import KnowledgeBase
from app_pages.common import document_labels, current_actor, knowledge_base, note


MAX_QUESTION_CHARS = 2000


@dataclass
class Turn:
    """One question and its answer, kept in the session so the conversation stays on screen."""

    id: str
    question: str
    query: str  # what was searched: the question made standalone from the conversation
    answer: Answer
    feedback_id: int = 0


def where(passage: Passage) -> str:
    """file · page · section, as escaped HTML."""
    chunk = passage.chunk
    parts = [html.escape(chunk.source)]
    if passage.pages is not None:
        parts.append(passage.page_label())
    if chunk.section:
        parts.append(f"§ {html.escape(chunk.section)}")
    return " · ".join(parts)


def card(kb: KnowledgeBase, actor: Actor, n: int, passage: Passage, support: str, key: str) -> None:
    """One passage: its number, where it comes from, its score, its text with the supporting words
    marked, and its original file."""
    segments = mark_words(passage.chunk.text, support, kb.query_terms)
    with st.container(border=True):
        st.html(
            f'<div class="kb-card" data-n="{n}"><div class="kb-card-head"><b>[{n}]</b> {where(passage)}'
            f" · score {passage.score:.3f}</div>"
            f'<div class="kb-passage">{passage_html(segments)}</div></div>'
        )
        original = kb.original(passage.chunk.doc_id, actor=actor)
        if original is not None:
            name, path = original
            st.download_button(
                "Original file", data=path.read_bytes, file_name=PurePosixPath(name).name,
                mime="application/octet-stream", key=key, on_click="ignore", icon=":material/download:",
            )


def cards(kb: KnowledgeBase, actor: Actor, turn_id: str, answer: Answer, query: str) -> None:
    """One card per marker [n]; when the documents do not hold the answer, the closest passages."""
    if answer.citations:
        for citation in answer.citations:
            support = supporting_text(answer.text, citation.n)
            card(kb, actor, citation.n, citation.passage, support, key=f"orig-{turn_id}-{citation.n}")
    elif answer.passages:
        note("Closest passages (they do not answer the question):")
        for n, passage in enumerate(answer.passages, start=1):
            card(kb, actor, n, passage, query, key=f"orig-{turn_id}-{n}")


def save_feedback(kb: KnowledgeBase, actor: Actor, turn: Turn) -> None:
    thumbs = st.session_state.get(f"rating-{turn.id}")
    if thumbs is None:  # the thumb was clicked off again
        return
    comment = st.session_state.get(f"comment-{turn.id}", "")
    turn.feedback_id = kb.record_feedback(
        actor, turn.question, turn.query, turn.answer, 1 if thumbs == 1 else -1, comment, turn.feedback_id
    )


def feedback(kb: KnowledgeBase, actor: Actor, turn: Turn) -> None:
    st.feedback("thumbs", key=f"rating-{turn.id}", on_change=save_feedback, args=(kb, actor, turn))
    if turn.feedback_id:
        st.text_input(
            "Comment (optional)", key=f"comment-{turn.id}", max_chars=MAX_COMMENT_CHARS, on_change=save_feedback,
            args=(kb, actor, turn), placeholder="What was wrong or missing? Press Enter to save.",
        )
        st.caption("Thank you: your feedback is saved.")


def show_turn(kb: KnowledgeBase, actor: Actor, turn: Turn) -> None:
    with st.chat_message("user"):
        st.html(f'<div class="kb-question">{html.escape(turn.question)}</div>')
    with st.chat_message("assistant"):
        left, right = st.columns([3, 2], gap="medium")
        with left:
            if turn.query != turn.question:
                note(f"Searched for: {turn.query}")
            st.html(f'<div class="kb-answer">{answer_html(turn.answer.text)}</div>')
            note("LLM answer" if turn.answer.mode == "llm" else "Extractive answer (quoted sentences)")
            feedback(kb, actor, turn)
        with right:
            cards(kb, actor, turn.id, turn.answer, turn.query)


def answer_live(kb: KnowledgeBase, actor: Actor, question: str, query: str, doc_ids: list[str]) -> Answer:
    """Stream an answer: the retrieved passages' cards at once, then the text as it is written."""
    left, right = st.columns([3, 2], gap="medium")
    with left:
        if query != question:
            note(f"Searched for: {query}")
        text = st.empty()
    with right:
        passages_box = st.empty()
    final: list[Answer] = []  # the last event carries the finished answer

    def tokens():
        for event in kb.stream(query, doc_ids or None, actor=actor):
            if event.kind == "passages":
                with passages_box.container():
                    for n, passage in enumerate(event.passages, start=1):
                        card(kb, actor, n, passage, query, key=f"live-{n}")
            elif event.kind == "token":
                yield markdown_literal(event.token)
            elif event.answer is not None:
                final.append(event.answer)

    with text.container(), st.spinner("Writing the answer…"):
        st.write_stream(tokens())
    return final[-1]


def main() -> None:
    kb = knowledge_base()
    st.title("Ask the knowledge base")
    note(kb.modes().describe())

    actor = current_actor()  # once per run: who is asking decides which documents can answer
    documents = [d for d in kb.documents(actor=actor) if d.status == "ok"]
    names = document_labels(documents)
    turns: list[Turn] = st.session_state.setdefault("turns", [])
    if "doc_filter" in st.session_state:  # documents deleted since they were chosen drop out
        st.session_state["doc_filter"] = [d for d in st.session_state["doc_filter"] if d in names]
    with st.sidebar:
        doc_ids = st.multiselect(
            "Search only in", options=list(names), format_func=names.__getitem__, key="doc_filter",
            placeholder="All documents", help="Leave empty to search every document.",
        )
        if turns and st.button("New conversation", icon=":material/refresh:"):
            turns.clear()
            st.rerun()
    if not documents:
        st.info("No documents yet. Add some on the Upload page.", icon=":material/info:")
        st.page_link("app_pages/upload.py", label="Upload documents", icon=":material/upload_file:")

    for turn in turns:
        show_turn(kb, actor, turn)

    question = st.chat_input("Ask a question about your documents", max_chars=MAX_QUESTION_CHARS)
    if not question or not question.strip():
        return
    question = question.strip()
    with st.chat_message("user"):
        st.html(f'<div class="kb-question">{html.escape(question)}</div>')
    with st.chat_message("assistant"):
        try:
            query = kb.condense(question, [(t.query, t.answer.text) for t in turns])
            answer = answer_live(kb, actor, question, query, doc_ids)
        except IndexUnavailable as exc:  # e.g. the Qdrant server is down: say so, keep the conversation
            st.error(f"Search is not available right now: {exc}", icon=":material/error:")
            return
    turns.append(Turn(id=uuid.uuid4().hex[:12], question=question, query=query, answer=answer))
    st.rerun()  # show the finished answer as part of the conversation, with its feedback buttons


main()
