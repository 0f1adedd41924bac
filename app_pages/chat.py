"""Chat: ask questions, read answers with their numbered passage cards beside them, rate answers.

Everything that comes from documents (passages, extractive answers, LLM answers quoting them) is
shown as inert text: escaped HTML from kb/highlight.py, or Markdown with every character escaped
while an answer streams. Markers [n] in an answer and the cards' numbers are the same numbers.
A cited sentence its passages do not support is marked in the answer with the reason (kb.claims); a card
opens at the sentence that supports its claims, under that sentence's section, with its document's version.
"""

from __future__ import annotations

import html
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import combinations
from pathlib import PurePosixPath

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from kb.auth import Actor
from kb.feedback import MAX_COMMENT_CHARS
from kb.duplicates import differences, near_duplicate
from kb.highlight import (
    answer_html, excerpt_start, focus_segments, markdown_literal, passage_with_tables_html, supporting_spans,
)
from kb.errors import BadRequest, IndexUnavailable, KbError
from kb.records import Answer, Claim, Passage, Turn
from kb.rendering import RenderError, highlighted_band
from kb.service import KnowledgeBase
from app_pages.common import document_labels, current_actor, knowledge_base, note, oidc_configured


MAX_QUESTION_CHARS = 2000
TURNS_KEY = "turns"  # session_state: the open conversation's turns, as shown
CONVERSATION_KEY = "conversation"  # session_state and the page's ?conversation= : the open conversation's id
LEAD_IN_CHARS = 400  # of the passages before and after, shown around a passage opened in its document


@dataclass(frozen=True)
class Support:
    """What a card shows as backing the answer: the claims citing it that its text supports (their sentences
    are highlighted, with their words), the ones it does not (a warning each), or, without claims, the
    question (closest passages, cards shown while an answer streams)."""

    claims: tuple[str, ...] = ()
    words: str = ""  # the words to mark inside the supporting sentences
    unsupported: tuple[Claim, ...] = ()
    # The passage's sentences that back its claims (Claim.evidence: the same sentences give the citation's
    # page); None for the question's cards, whose sentences are found from the question's words.
    evidence: tuple[tuple[int, int], ...] | None = None

    @classmethod
    def of(cls, answer: Answer, n: int) -> Support:
        citing = [c for c in answer.claims if n in c.cited]
        backed = [c for c in citing if c.supported]
        spans = sorted({(start, end) for c in backed for m, start, end in c.evidence if m == n})
        return cls(
            claims=tuple(c.text for c in backed),
            words=" ".join(w for c in backed for w in c.support_words),
            unsupported=tuple(c for c in citing if not c.supported),
            evidence=tuple(spans),
        )

    @classmethod
    def question(cls, query: str) -> Support:
        return cls(claims=(query,), words=query)

    def spans(self, text: str, terms_of: Callable[[str], set[int]]) -> list[tuple[int, int]]:
        """Where in the passage `text` the support stands."""
        if self.evidence is not None:
            return list(self.evidence)
        return supporting_spans(text, self.claims, terms_of)


def where(passage: Passage, section: str | None, cited: bool) -> str:
    """file · page · section, as escaped HTML; a cited passage's page is that of its supporting sentence."""
    chunk = passage.chunk
    parts = [html.escape(chunk.source)]
    if passage.pages is not None:
        parts.append(passage.page_label("quote" if cited else "match"))
    if section:
        parts.append(f"§ {html.escape(section)}")
    return " · ".join(parts)


def version_line(kb: KnowledgeBase, actor: Actor, passage: Passage) -> str:
    """"version 2 of 2024-05-01 · dated 2023-11-21": when the version was added, the date the document itself
    records (kb.parsing.dates), and which version is current when the passage is from an older one."""
    chunk = passage.chunk
    found = kb.version_of(chunk.doc_id, chunk.version, actor=actor)
    if found is None:
        return ""
    doc, added = found
    line = f"version {chunk.version}" + (f" of {added[:10]}" if added else "")
    if chunk.date:
        line += f" · dated {chunk.date}"
    if doc.version and doc.version != chunk.version:
        line += f" (version {doc.version} is current)"
    return html.escape(line)


def duplicate_notes(shown: dict[int, Passage]) -> dict[int, list[str]]:
    """For each card, a note per other card from a different document with nearly the same text, naming
    that file and the words where the two differ: two such cards are one source, and may disagree."""
    notes: dict[int, list[str]] = {n: [] for n in shown}
    for n, m in combinations(sorted(shown), 2):
        a, b = shown[n].chunk, shown[m].chunk
        if a.doc_id == b.doc_id or not near_duplicate(a.text, b.text):
            continue
        for this, other, here, there in ((n, m, a, b), (m, n, b, a)):
            note_text = f"Nearly the same text as [{other}] ({there.source})"
            changes = differences(here.text, there.text)
            if changes:
                said = "; ".join(f"“{mine or '–'}” here, “{theirs or '–'}” in [{other}]" for mine, theirs in changes)
                note_text += f": they differ in {said}"
            notes[this].append(html.escape(note_text))
    return notes


def card(
    kb: KnowledgeBase, actor: Actor, n: int, passage: Passage, support: Support, key: str, notes: Sequence[str] = ()
) -> None:
    """One passage: its number, where it comes from (the section of its supporting sentence), its version
    and score, any warnings, and its text opened at the supporting sentence, which is highlighted with the
    claim's words; the whole passage and the original file below."""
    chunk = passage.chunk
    spans = support.spans(chunk.text, kb.query_terms)
    segments = focus_segments(chunk.text, spans, support.words, kb.query_terms)
    start = excerpt_start(chunk.text, spans)
    section = chunk.section_at(spans[0][0]) if spans else chunk.section
    meta = " · ".join(part for part in (version_line(kb, actor, passage), f"score {passage.score:.3f}") if part)
    warnings = [*notes] + [
        html.escape(f"Cited for “{claim.text}”, which it does not support: {claim.reason}")
        for claim in support.unsupported
    ]
    body = passage_with_tables_html(segments, chunk.tables, start)
    if start:
        body = f"… {body}"
        whole = f'<details class="kb-whole"><summary>Whole passage</summary><div class="kb-passage">{passage_with_tables_html(segments, chunk.tables)}</div></details>'
    else:
        whole = ""
    with st.container(border=True):
        st.html(
            f'<div class="kb-card" data-n="{n}"><div class="kb-card-head"><b>[{n}]</b> {where(passage, section, support.evidence is not None)}</div>'
            f'<div class="kb-card-meta">{meta}</div>'
            + "".join(f'<div class="kb-card-warn">\u26a0 {w}</div>' for w in warnings)
            + f'<div class="kb-passage">{body}</div>{whole}</div>'
        )
        original = kb.version_original(chunk.doc_id, chunk.version, actor=actor)  # the version the passage is from
        if original is not None:
            name, read = original
            st.download_button(
                "Original file", data=read, help=f"Version {chunk.version}, the one this passage is from",
                file_name=PurePosixPath(name).name, mime="application/octet-stream", key=key, on_click="ignore", icon=":material/download:",
            )
        else:
            note("The original is no longer kept.")
        if st.toggle("Open in document", key=f"open-{key}"):
            in_document(kb, actor, passage, [chunk.text[start:end] for start, end in spans] or [chunk.text], key)


# Drawn pages are kept for a while, per person (the rights are checked when a page is drawn), and bounded.
@st.cache_data(max_entries=64, ttl=900, show_spinner="Drawing the page…")
def drawn_page(_kb: KnowledgeBase, actor: Actor, chunk_id: str, page: int, phrases: tuple[str, ...]) -> tuple[bytes, bytes, int]:
    """(the band around the highlights, the whole page, the page count) as PNGs."""
    drawn = _kb.render_page(chunk_id, page, phrases, actor=actor)
    return highlighted_band(drawn), drawn.png, drawn.pages


def in_document(kb: KnowledgeBase, actor: Actor, passage: Passage, support: list[str], key: str) -> None:
    """The passage where it stands: for a PDF the page drawn with the supporting sentences highlighted,
    the pages around it a click away; for other formats the text around it, escaped, the passage marked."""
    chunk = passage.chunk
    try:
        if passage.page is not None and pdf_page(kb, actor, passage, support, key):
            return
        before, shown, after = kb.surroundings(chunk.chunk_id, actor=actor)
    except KbError as exc:  # its document no longer visible or kept
        st.caption(f"Cannot open it in the document: {exc}")
        return
    place = " · ".join(part for part in (chunk.source, passage.page_label(), chunk.section and f"§ {chunk.section}") if part)
    lead = before.text[-LEAD_IN_CHARS:] if before is not None else ""
    follow = after.text[:LEAD_IN_CHARS] if after is not None else ""
    st.html(
        f'<div class="kb-in-document"><div class="kb-card-meta">{html.escape(place)}</div><div class="kb-passage">'
        + (f"… {html.escape(lead)}\n\n" if lead else "")
        + f'<span class="kb-support">{html.escape(shown.chunk.text)}</span>'
        + (f"\n\n{html.escape(follow)} …" if follow else "")
        + "</div></div>"
    )


def pdf_page(kb: KnowledgeBase, actor: Actor, passage: Passage, support: list[str], key: str) -> bool:
    """The passage's page drawn with its supporting sentences highlighted, the pages around it a click away;
    False when its document is not a PDF (slides have pages too) or its original is no longer kept."""
    chunk = passage.chunk
    page_key = f"page-{key}"
    page = st.session_state.setdefault(page_key, passage.page)
    try:
        band, whole, pages = drawn_page(kb, actor, chunk.chunk_id, page, tuple(support))
    except RenderError:
        return False
    st.image(band, caption=f"{chunk.source} · page {page} of {pages}")
    with st.expander("Whole page"):
        st.image(whole)
    back, ahead = st.columns(2)
    back.button("Previous page", key=f"prev-{key}", disabled=page <= 1, icon=":material/chevron_left:",
                on_click=st.session_state.__setitem__, args=(page_key, page - 1))
    ahead.button("Next page", key=f"next-{key}", disabled=page >= pages, icon=":material/chevron_right:",
                 on_click=st.session_state.__setitem__, args=(page_key, page + 1))
    return True


def cards(kb: KnowledgeBase, actor: Actor, turn_id: str, answer: Answer, query: str) -> None:
    """One card per marker [n]; when the documents do not hold the answer, the closest passages."""
    if answer.citations:
        shown = {citation.n: citation.passage for citation in answer.citations}
        notes = duplicate_notes(shown)
        for n, passage in shown.items():
            card(kb, actor, n, passage, Support.of(answer, n), key=f"orig-{turn_id}-{n}", notes=notes[n])
    elif answer.passages:
        note("Closest passages (they do not answer the question):")
        closest = dict(enumerate(answer.passages, start=1))
        notes = duplicate_notes(closest)
        for n, passage in closest.items():
            card(kb, actor, n, passage, Support.question(query), key=f"orig-{turn_id}-{n}", notes=notes[n])


def checked_note(answer: Answer) -> str:
    """How the cited sentences fared against their passages, in one line ("" when nothing is cited)."""
    if not answer.claims:
        return ""
    bad = sum(not claim.supported for claim in answer.claims)
    total = len(answer.claims)
    if not bad:
        return f"Each of the {total} cited sentences was checked against its passages." if total > 1 else (
            "The cited sentence was checked against its passage.")
    return f"{bad} of {total} cited sentences are not supported by the passages they cite (marked \u26a0)."


def save_feedback(kb: KnowledgeBase, actor: Actor, turn: Turn) -> None:
    thumbs = st.session_state.get(f"rating-{turn.id}")
    if thumbs is None:  # the thumb was clicked off again
        return
    comment = st.session_state.get(f"comment-{turn.id}", "")
    turn.feedback_id = kb.record_feedback(
        actor, turn.question, turn.query, turn.answer, 1 if thumbs == 1 else -1, comment, turn.feedback_id,
        turn.answer_id,
    )
    if conversation := st.session_state.get(CONVERSATION_KEY):
        kb.note_turn_feedback(conversation, turn, actor=actor)


def feedback(kb: KnowledgeBase, actor: Actor, turn: Turn) -> None:
    st.feedback("thumbs", key=f"rating-{turn.id}", on_change=save_feedback, args=(kb, actor, turn))
    if turn.feedback_id:
        st.text_input(
            "Comment (optional)", key=f"comment-{turn.id}", max_chars=MAX_COMMENT_CHARS, on_change=save_feedback,
            args=(kb, actor, turn), placeholder="What was wrong or missing? Press Enter to save.",
        )
        st.caption("Thank you: your feedback is saved.")


def asked(question: str, query: str) -> tuple[DeltaGenerator, DeltaGenerator]:
    """The question's bubble, then the answer's two columns (answer, cards), with what was searched."""
    with st.chat_message("user"):
        st.html(f'<div class="kb-question">{html.escape(question)}</div>')
    left, right = st.chat_message("assistant").columns([3, 2], gap="medium")
    if query != question:
        with left:
            note(f"Searched for: {query}")
    return left, right


def show_turn(kb: KnowledgeBase, actor: Actor, turn: Turn) -> None:
    left, right = asked(turn.question, turn.query)
    if turn.withheld:
        with left:
            note("This answer showed a document you may no longer see, or one deleted since: it is not shown again.")
        return
    with left:
        st.html(f'<div class="kb-answer">{answer_html(turn.answer.text, turn.answer.claims)}</div>')
        if turn.answer.mode == "llm":  # an extractive answer says what it is in its own first line
            note("LLM answer")
        if checked_note(turn.answer):
            note(checked_note(turn.answer))
        if turn.answer_id:
            note(f"Link to this answer: ?answer={turn.answer_id}")
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
                        card(kb, actor, n, passage, Support.question(query), key=f"live-{n}")
            elif event.kind == "token":
                yield markdown_literal(event.token)
            elif event.answer is not None:
                final.append(event.answer)

    with text.container(), st.spinner("Writing the answer…"):
        st.write_stream(tokens())
    return final[-1]


def show_shared(kb: KnowledgeBase, actor: Actor, answer_id: str) -> None:
    """One recorded answer opened by its permalink (?answer=ID), with the passages as they were shown then,
    for those who may see every document it cites (KnowledgeBase.recorded_answer decides)."""
    try:
        record, current = kb.recorded_answer(int(answer_id), actor=actor)
    except (ValueError, KbError):
        st.error(f"No answer {answer_id} that you may see.", icon=":material/block:")
        return
    note(f"Answer {record.id}, shown to {record.user} on {record.time[:16].replace('T', ' ')} ({record.mode})")
    left, right = asked(record.question, record.query)
    with left:
        st.html(f'<div class="kb-answer">{answer_html(record.answer)}</div>')
        for claim in record.claims:
            if not claim.get("supported"):
                note(f"\u26a0 not supported: {claim.get('text')} ({claim.get('reason')})")
    with right:
        for cited in record.citations:
            now_at = current.get(cited.doc_id)
            if now_at is None:
                status = "the document has been deleted since"
            elif now_at != cited.version:
                status = f"version {now_at} is current: the passage is shown as it was then"
            else:
                status = "still the current version"
            page = f" · p. {cited.page}" if cited.page else ""
            with st.container(border=True):
                st.html(
                    f'<div class="kb-card" data-n="{cited.n}"><div class="kb-card-head"><b>[{cited.n}]</b> '
                    f"{html.escape(cited.source)}{page}</div><div class=\"kb-card-meta\">version {cited.version} · "
                    f"{html.escape(status)}</div><div class=\"kb-passage\">{html.escape(cited.text)}</div></div>"
                )
                if now_at == cited.version and st.toggle("Open in document", key=f"open-shared-{cited.n}"):
                    try:
                        chunk = kb.show(cited.chunk_id, actor=actor).chunk
                    except KbError as exc:
                        st.caption(f"Cannot open it in the document: {exc}")
                    else:
                        in_document(kb, actor, Passage(chunk, 0.0, cited.n, cited.page), [cited.text], f"shared-{cited.n}")
    if st.button("Ask your own question", icon=":material/chat:"):
        st.query_params.clear()
        st.rerun()


def open_conversation(kb: KnowledgeBase, actor: Actor) -> list[Turn]:
    """The turns of the conversation the page's address names (?conversation=ID), loaded from the catalog
    when this session has not got them yet: after a reload, a restart or in a new tab."""
    wanted = st.query_params.get(CONVERSATION_KEY, "")
    if wanted and wanted != st.session_state.get(CONVERSATION_KEY):
        try:
            st.session_state[TURNS_KEY] = kb.conversation_turns(wanted, actor=actor)
            st.session_state[CONVERSATION_KEY] = wanted
        except BadRequest:
            st.warning("That conversation is not one of yours (or it was deleted).", icon=":material/warning:")
            del st.query_params[CONVERSATION_KEY]
            start_new()
    elif not wanted and st.session_state.get(CONVERSATION_KEY):  # the address lost it: put it back
        st.query_params[CONVERSATION_KEY] = st.session_state[CONVERSATION_KEY]
    turns: list[Turn] = st.session_state.setdefault(TURNS_KEY, [])
    return turns


def start_new() -> None:
    st.session_state[TURNS_KEY] = []
    st.session_state.pop(CONVERSATION_KEY, None)
    st.query_params.pop(CONVERSATION_KEY, None)


def switch_to(conversation_id: str) -> None:
    st.session_state.pop(CONVERSATION_KEY, None)  # open_conversation loads it
    st.query_params[CONVERSATION_KEY] = conversation_id


def conversation_list(kb: KnowledgeBase, actor: Actor) -> None:
    """The sidebar's list of the user's conversations: reopen one, rename or delete the open one."""
    current = st.session_state.get(CONVERSATION_KEY)
    st.button("New conversation", icon=":material/add_comment:", on_click=start_new, disabled=not current,
              width="stretch")
    mine = kb.conversations(actor=actor)
    if not mine:
        return
    st.caption("Your conversations" + ("" if oidc_configured() else " (without sign-in, everyone here shares them)"))
    for conversation in mine[:30]:
        st.button(
            conversation.title, key=f"conv-{conversation.id}", on_click=switch_to, args=(conversation.id,),
            type="primary" if conversation.id == current else "tertiary", width="stretch",
            help=f"{conversation.turns} question{'s' if conversation.turns != 1 else ''}, last "
                 f"{conversation.updated_at[:16].replace('T', ' ')} UTC",
        )
    if current:
        with st.popover("Rename or delete", icon=":material/edit:", width="stretch"):
            title = st.text_input("Name", value=next((c.title for c in mine if c.id == current), ""),
                                  key=f"title-{current}", max_chars=80)
            if st.button("Rename", key="rename-conversation"):
                try:
                    kb.rename_conversation(current, title, actor=actor)
                except BadRequest as exc:
                    st.error(str(exc))
                else:
                    st.rerun()
            if st.button("Delete this conversation", key="delete-conversation", icon=":material/delete:"):
                kb.delete_conversation(current, actor=actor)
                start_new()
                st.rerun()


def main() -> None:
    kb = knowledge_base()
    st.title("Ask the knowledge base")
    note(kb.modes().describe())

    actor = current_actor()  # once per run: who is asking decides which documents can answer
    if "answer" in st.query_params:
        show_shared(kb, actor, st.query_params["answer"])
        return
    documents = [d for d in kb.documents(actor=actor) if d.status == "ok"]
    names = document_labels(documents)
    turns = open_conversation(kb, actor)
    if "doc_filter" in st.session_state:  # documents deleted since they were chosen drop out
        st.session_state["doc_filter"] = [d for d in st.session_state["doc_filter"] if d in names]
    with st.sidebar:
        doc_ids = st.multiselect(
            "Search only in", options=list(names), format_func=names.__getitem__, key="doc_filter",
            placeholder="All documents", help="Leave empty to search every document.",
        )
        conversation_list(kb, actor)
    if not documents:
        st.info("No documents yet. Add some on the Upload page.", icon=":material/info:")
        st.page_link("app_pages/upload.py", label="Upload documents", icon=":material/upload_file:")

    for turn in turns:
        show_turn(kb, actor, turn)

    # No max_chars on the box: a pasted text over the limit would vanish from it without a word.
    question = st.chat_input("Ask a question about your documents")
    if not question or not question.strip():
        return
    question = question.strip()
    if len(question) > MAX_QUESTION_CHARS:
        st.warning(f"Your question has {len(question):,} characters; questions are limited to "
                   f"{MAX_QUESTION_CHARS:,}. Shorten it and ask again (your text is below to copy).",
                   icon=":material/warning:")
        st.code(question, language=None, wrap_lines=True)
        return
    with st.chat_message("user"):
        st.html(f'<div class="kb-question">{html.escape(question)}</div>')
    with st.chat_message("assistant"):
        try:
            query = kb.condense(question, [(t.query, t.answer.text) for t in turns])
            answer = answer_live(kb, actor, question, query, doc_ids)
        except IndexUnavailable as exc:  # e.g. the Qdrant server is down: say so, keep the conversation
            st.error(f"Search is not available right now: {exc}", icon=":material/error:")
            return
    answer_id = kb.record_answer(actor, question, query, answer)
    turn = Turn(id=uuid.uuid4().hex[:12], question=question, query=query, answer=answer, answer_id=answer_id)
    conversation = st.session_state.get(CONVERSATION_KEY) or kb.start_conversation(question, actor=actor)
    try:
        kb.add_turn(conversation, turn, actor=actor)
    except BadRequest:  # deleted meanwhile (in another tab): the question starts a new one
        conversation = kb.start_conversation(question, actor=actor)
        kb.add_turn(conversation, turn, actor=actor)
    st.session_state[CONVERSATION_KEY] = conversation
    st.query_params[CONVERSATION_KEY] = conversation
    turns.append(turn)
    st.rerun()  # show the finished answer as part of the conversation, with its feedback buttons


main()
