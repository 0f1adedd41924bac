"""The Chat page under AppTest: answers with numbered passage cards, safety of shown text, "not found",
filters, feedback, and follow-up questions with an LLM (the fake OpenAI server)."""

from __future__ import annotations

import html
import re

import pytest
from kb.auth import LOCAL_ADMIN

from app_helpers import HOSTILE, LEAVE, TRAVEL, add_documents, app_environment, html_of, new_app, restart
from test_parsing import make_pdf

CONDENSED = "How do part-time staff request annual leave?"
# The same page uploaded under two names, one of them edited: two cards that disagree.
LAPTOPS = """# IT equipment

Laptops are replaced every {years} years by the IT desk, who also repair broken screens at no cost to staff.
Return the old laptop to the IT desk within a week of receiving the new one.
"""


@pytest.fixture(scope="module")
def kb(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("chat")
    with app_environment(root) as base:
        benefits = make_pdf([["Staff benefits", "This guide lists the benefits of permanent staff."],
                             ["Dental cover starts after three months of employment."]])
        add_documents(base, root / "docs", {
            "leave.md": LEAVE, "travel.md": TRAVEL, "overtime.txt": HOSTILE, "benefits.pdf": benefits,
            "it/laptops.md": LAPTOPS.format(years="three"), "it/laptops-old.md": LAPTOPS.format(years="four"),
        })
        yield base


def ask(app, question: str):
    app.chat_input[0].set_value(question).run()
    assert not app.exception, app.exception
    return app


def cards(app) -> dict[int, str]:
    """Card number -> the card's HTML, for the last answer on the page."""
    found: dict[int, str] = {}
    for element in app.html:
        if element.value.startswith('<div class="kb-answer">'):
            found = {}
        match = re.match(r'<div class="kb-card" data-n="(\d+)">', element.value)
        if match:
            found[int(match.group(1))] = element.value
    return found


def notes(app) -> list[str]:
    """The small grey lines (mode, searched query, ...) as a reader sees them."""
    prefix = '<p class="kb-note">'
    return [html.unescape(e.value[len(prefix):-len("</p>")]) for e in app.html if e.value.startswith(prefix)]


def answers(app) -> list[str]:
    return [e.value for e in app.html if e.value.startswith('<div class="kb-answer">')]


def test_an_answer_has_one_card_per_marker_naming_file_section_and_score(kb):
    app = ask(new_app(), "How do I request annual leave?")
    assert "extractive (no LLM configured) · keyword search only" in notes(app)
    (answer,) = answers(app)
    assert "HR portal" in answer
    markers = {int(n) for n in re.findall(r"<b>\[(\d+)\]</b>", answer)}
    shown = cards(app)
    assert markers and set(shown) == markers  # one card per marker, same numbers
    leave_card = next(html for html in shown.values() if "leave.md" in html)
    assert "§ Requesting leave" in leave_card and "score " in leave_card
    assert "<mark>" in leave_card  # the supporting words are highlighted
    originals = [b for b in app.get("download_button") if b.proto.label == "Original file"]
    assert len(originals) == len(shown)
    assert all(b.proto.help.startswith("Version 1,") for b in originals)  # the passage's own version's file
    # the cited chunk's words that the answer uses are the ones marked
    assert "<mark>HR portal</mark>" in leave_card or "<mark>HR</mark>" in leave_card


def support_of(card: str) -> str:
    """The highlighted supporting sentence(s) of a card as shown at first (not in "Whole passage"), as text."""
    shown = card.split("<details")[0]
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", part))
                    for part in re.findall(r'<span class="kb-support">(.*?)</span>', shown, re.S))


def test_a_card_opens_at_its_supporting_sentence_under_that_sentences_section(kb):
    app = ask(new_app(), "How do part-time staff accrue annual leave?")
    shown = cards(app)
    leave_card = next(html for html in shown.values() if "leave.md" in html)
    # the chunk starts under "Requesting leave"; the quoted sentence stands under "Part-time staff"
    assert "§ Part-time staff" in leave_card and "§ Requesting leave" not in leave_card
    assert support_of(leave_card) == "Part-time staff accrue annual leave in proportion to their contracted hours."
    outside = re.sub(r'<span class="kb-support">.*?</span>', "", leave_card, flags=re.S)
    assert "<mark>" not in outside.split('<details')[0]  # no word is marked outside the supporting sentence
    # it is in sight: the card's text starts just before it, the whole passage is one click away
    excerpt = re.search(r'<div class="kb-passage">(.*?)</div>', leave_card, re.S).group(1)
    assert excerpt.startswith("… ") and excerpt.index("kb-support") < 200
    assert '<details class="kb-whole"><summary>Whole passage</summary>' in leave_card
    assert re.search(r'<div class="kb-card-meta">version 1 of \d{4}-\d{2}-\d{2} · score ', leave_card)


def test_a_card_from_a_pdf_names_its_page(kb):
    app = ask(new_app(), "When does dental cover start?")
    (card,) = cards(app).values()
    assert re.search(r"<b>\[1\]</b> benefits\.pdf · pp?\. \d", card)  # "p. 3", or "pp. 3–4, match on p. 4"


def test_passage_and_answer_text_is_never_live_html_or_markdown(kb):
    app = ask(new_app(), "How do I get overtime requests approved by my supervisor?")
    page = html_of(app)
    assert "overtime.txt" in page
    assert "&lt;script&gt;" in page and "<script" not in page
    assert "<img" not in page and "<a " not in page and "<b>approve</b>" not in page
    assert "How do I get overtime requests approved by my supervisor?" in page  # the question, as text


def test_when_the_documents_do_not_hold_the_answer_it_says_so_and_shows_the_closest(kb):
    app = ask(new_app(), "How many vacation days do astronauts get on Mars for leave?")
    (answer,) = answers(app)
    assert "The documents do not contain the answer" in answer
    assert any("Closest passages" in c for c in notes(app))
    assert cards(app)  # the closest passages, numbered


def test_the_filter_restricts_the_search_to_the_chosen_documents(kb):
    question = "How do I submit a leave request or an expense claim?"
    assert {p.chunk.source for p in kb.search(question, actor=LOCAL_ADMIN)} >= {"leave.md", "travel.md"}
    app = new_app()
    travel = kb.catalog.named("travel.md")[0]
    app.sidebar.multiselect[0].set_value([travel.doc_id]).run()
    ask(app, question)
    shown = cards(app)
    assert shown and all("travel.md" in html for html in shown.values())


def test_the_conversation_stays_on_screen_and_feedback_is_stored(kb):
    app = ask(new_app(), "How do I request annual leave?")
    ask(app, "How are travel expenses reimbursed?")
    assert len(answers(app)) == 2 and len(app.chat_message) == 4
    page = html_of(app)
    assert page.index("leave.md") < page.index("travel.md")  # both answers keep their cards, in order

    app.feedback[0].set_value(0).run()  # thumbs down on the first answer
    (stored,) = kb.catalog.feedback()
    assert stored.rating == -1 and stored.question == "How do I request annual leave?"
    assert stored.chunk_ids and all(c.startswith(kb.catalog.named("leave.md")[0].doc_id) for c in stored.chunk_ids)
    assert "HR portal" in stored.answer and stored.created_at

    app.text_input(key=f"comment-{app.session_state['turns'][0].id}").set_value("mention the deadline").run()
    (stored,) = kb.catalog.feedback()
    assert stored.comment == "mention the deadline" and stored.rating == -1


def test_with_an_llm_a_follow_up_is_searched_standalone_and_a_failure_falls_back(kb, fake_openai, monkeypatch):
    def reply(body: dict) -> str:
        if "standalone question" in body["messages"][0]["content"]:
            return CONDENSED
        return "Part-time staff accrue annual leave in proportion to their hours [1]."

    fake_openai.reply = reply
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    monkeypatch.setenv("KB_LLM_MODEL", "fake-model")
    restart()
    try:
        app = ask(new_app(), "How do I request annual leave?")
        assert "LLM: fake-model · keyword search only" in notes(app)
        ask(app, "and for part-time staff?")
        assert f"Searched for: {CONDENSED}" in notes(app)
        condense = [r for r in fake_openai.chat_requests if "standalone question" in r["messages"][0]["content"]]
        (request,) = condense  # the first question needed no rewriting
        assert "How do I request annual leave?" in request["messages"][1]["content"]
        last_answer = answers(app)[-1]
        assert "proportion to their hours <b>[1]</b>" in last_answer
        assert 1 in cards(app)

        fake_openai.failure = "error"  # the model goes down: the page shows the extractive fallback
        ask(app, "How do I request annual leave?")
        fallback = answers(app)[-1]
        assert "language model is not reachable (the server answered HTTP 500)" in fallback
        assert "HR portal" in fallback and cards(app)
    finally:
        monkeypatch.delenv("OPENAI_API_KEY")
        restart()


def test_with_an_llm_an_unsupported_sentence_is_marked_and_near_identical_files_are_named(kb, fake_openai, monkeypatch):
    def reply(body: dict) -> str:
        prompt = body["messages"][-1]["content"]
        if "standalone question" in body["messages"][0]["content"]:
            return "How often are laptops replaced?"
        if "How often are laptops replaced?" in prompt:
            return "Laptops are replaced every three years by the IT desk [1], or every four years [2]."
        return ("Annual leave is requested in the HR portal at least two weeks in advance [1]. "
                "The request is approved by the CEO within 14 days [1].")

    fake_openai.reply = reply
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    monkeypatch.setenv("KB_LLM_MODEL", "fake-model")
    restart()
    try:
        app = ask(new_app(), "How do I request annual leave?")
        (answer,) = answers(app)
        assert "Annual leave is requested in the HR portal at least two weeks in advance <b>[1]</b>. " in answer
        assert ('<span class="kb-unsupported">The request is approved by the CEO within 14 days <b>[1]</b>.</span>'
                '<span class="kb-flag" title="not supported: 14 is not in [1]">\u26a0 not supported: 14 is not in [1]</span>'
                in answer)  # the sentence stays, marked, with the reason in words
        assert "1 of 2 cited sentences are not supported by the passages they cite (marked \u26a0)." in notes(app)
        (card,) = cards(app).values()
        assert "\u26a0 Cited for “The request is approved by the CEO within 14 days.”, which it does not support: " in card
        assert support_of(card) == "To request annual leave, submit a request in the HR portal at least two weeks in advance."

        ask(app, "How often are laptops replaced?")
        shown = cards(app)
        assert set(shown) == {1, 2}
        names = {n: re.search(r"</b> (\S*laptops(?:-old)?\.md)", c).group(1) for n, c in shown.items()}
        assert {name.rsplit("/", 1)[-1] for name in names.values()} == {"laptops.md", "laptops-old.md"}
        for n, m in ((1, 2), (2, 1)):
            said = re.search(r'<div class="kb-card-warn">\u26a0 (.*?)</div>', shown[n]).group(1)
            assert html.unescape(said).startswith(f"Nearly the same text as [{m}] ({names[m]}): they differ in “")
            mine, theirs = ("three", "four") if names[n].endswith("/laptops.md") or names[n] == "laptops.md" else ("four", "three")
            assert f"“{mine}” here, “{theirs}” in [{m}]" in html.unescape(said)
    finally:
        monkeypatch.delenv("OPENAI_API_KEY")
        restart()


def test_open_in_document_draws_a_pdf_page_and_shows_text_in_place(kb):
    app = ask(new_app(), "When does dental cover start?")
    (toggle,) = [t for t in app.toggle if t.label == "Open in document"]
    toggle.set_value(True).run()
    assert not app.exception, app.exception
    images = app.get("image")
    assert images, "the PDF page is drawn"
    assert any("benefits.pdf · page 2 of 2" in str(image.proto) for image in images)
    assert [b.label for b in app.button if "page" in b.label] == ["Previous page", "Next page"]
    next(b for b in app.button if b.label == "Previous page").click().run()
    assert any("page 1 of 2" in str(image.proto) for image in app.get("image"))

    app = ask(new_app(), "How do I request annual leave?")
    for toggle in [t for t in app.toggle if t.label == "Open in document"]:
        toggle.set_value(True)
    app.run()
    assert not app.exception, app.exception
    opened = [e.value for e in app.html if e.value.startswith('<div class="kb-in-document">')]
    assert any("leave.md" in block and '<span class="kb-support">' in block for block in opened)


def test_open_in_document_shows_a_slide_with_pages_as_text_not_as_a_drawn_page(kb, tmp_path):
    from app_pages.common import knowledge_base
    from test_parsing import make_pptx

    add_documents(knowledge_base(), tmp_path, {"review.pptx": make_pptx(tmp_path / "deck.pptx").read_bytes()})
    app = ask(new_app(), "How many engineers do we hire next?")
    assert "review.pptx" in cards(app)[1]
    next(t for t in app.toggle if t.label == "Open in document").set_value(True).run()
    assert not app.exception, app.exception
    assert not app.get("image")  # slides have pages, but only a PDF's are drawn
    opened = [e.value for e in app.html if e.value.startswith('<div class="kb-in-document">')]
    assert opened and "Hire two engineers." in opened[0] and "review.pptx" in opened[0]


def test_open_in_document_draws_a_pdf_by_its_content_whatever_its_name(kb, tmp_path):
    from app_pages.common import knowledge_base

    pdf = make_pdf([["Parking", "Staff parking permits are issued by the facilities team every January."]])
    add_documents(knowledge_base(), tmp_path, {"parking-rules.txt": pdf})  # a PDF saved under a .txt name
    app = ask(new_app(), "Who issues staff parking permits?")
    assert "parking-rules.txt" in cards(app)[1]
    next(t for t in app.toggle if t.label == "Open in document").set_value(True).run()
    assert any("parking-rules.txt · page 1 of 1" in str(image.proto) for image in app.get("image"))


def test_every_answer_shown_in_chat_is_in_the_audit_log_with_its_rating(kb):
    from app_pages.common import knowledge_base

    kb = knowledge_base()  # the app's own (an earlier test may have restarted it)
    before = len(kb.audit(LOCAL_ADMIN))
    app = ask(new_app(), "How do I request annual leave?")
    records = kb.audit(LOCAL_ADMIN)
    assert len(records) == before + 1
    record = records[0]
    assert record.question == "How do I request annual leave?" and record.citations and record.rating is None
    app.get("feedback")[0].set_value(0).run()  # thumbs down
    assert kb.audit(LOCAL_ADMIN)[0].rating == -1


def test_a_permalink_opens_the_answer_as_it_was_shown_for_those_who_may_see_it(kb, tmp_path):
    from app_pages.common import knowledge_base
    from kb.auth import Actor

    kb = knowledge_base()  # the app's own (an earlier test may have restarted it)
    app = ask(new_app(), "How do I request annual leave?")
    link = next(n for n in notes(app) if n.startswith("Link to this answer: ?answer="))
    answer_id = link.rsplit("=", 1)[1]
    shared = new_app()
    shared.query_params["answer"] = answer_id
    shared.run()
    assert not shared.exception, shared.exception
    page = html_of(shared)
    assert "How do I request annual leave?" in page and "HR portal" in page and "still the current version" in page
    shared.toggle(key="open-shared-1").set_value(True).run()
    assert '<div class="kb-in-document">' in html_of(shared)  # the passage in place, in its document
    record, _ = kb.recorded_answer(int(answer_id), actor=LOCAL_ADMIN)
    cited_doc = record.citations[0].doc_id
    kb.catalog.set_groups(cited_doc, ("hr",))  # the cited document becomes HR's only
    try:
        with pytest.raises(Exception, match="not yours to see"):
            kb.recorded_answer(int(answer_id), actor=Actor("sam@example.com", groups=("sales",)))
        assert kb.recorded_answer(int(answer_id), actor=Actor("hr@example.com", groups=("hr",)))[0].id == record.id
    finally:
        kb.catalog.set_groups(cited_doc, ())
    missing = new_app()
    missing.query_params["answer"] = "999999"
    missing.run()
    assert any("No answer 999999" in e.value for e in missing.error)


def conversation_buttons(app) -> dict[str, object]:
    """The sidebar's conversation buttons by their label."""
    return {b.label: b for b in app.sidebar.button if b.key and b.key.startswith("conv-")}


def test_conversations_survive_a_new_session_and_a_restart_of_the_app_for_their_user_only(kb, monkeypatch):
    from app_pages import common
    from kb.auth import Actor

    first = ask(new_app(), "Which receipts do travel claims need?")
    conversation = first.query_params["conversation"]
    assert first.session_state["conversation"] == conversation
    restart()

    reopened = new_app()  # a new session, as after a reload, of the same (local) user
    assert not answers(reopened)
    conversation_buttons(reopened)["Which receipts do travel claims need?"].click().run()
    assert len(answers(reopened)) == 1 and "travel.md" in html_of(reopened)
    ask(reopened, "and who approves them?")  # a follow-up carries on from the reopened turns
    assert len(answers(reopened)) == 2
    kb = common.knowledge_base()
    (turns,) = [kb.conversation_turns(c.id, actor=common.current_actor())
                for c in kb.conversations(actor=common.current_actor()) if c.id == conversation]
    assert [t.question for t in turns] == ["Which receipts do travel claims need?", "and who approves them?"]

    by_link = new_app()  # the address names the conversation: a reload lands back in it
    by_link.query_params["conversation"] = conversation
    by_link.run()
    assert len(answers(by_link)) == 2

    monkeypatch.setattr(common, "current_actor", lambda: Actor("sam@example.com"))
    stranger = new_app()
    assert "Which receipts do travel claims need?" not in conversation_buttons(stranger)
    stranger.query_params["conversation"] = conversation
    stranger.run()
    assert not answers(stranger) and any("not one of yours" in w.value for w in stranger.warning)
    monkeypatch.undo()

    by_link.text_input(key=f"title-{conversation}").set_value("Travel receipts").run()
    by_link.button(key="rename-conversation").click().run()
    assert "Travel receipts" in conversation_buttons(by_link)
    by_link.button(key="delete-conversation").click().run()
    assert "Travel receipts" not in conversation_buttons(new_app())
    assert not answers(by_link) and "conversation" not in by_link.query_params


def test_a_question_over_the_limit_is_refused_with_a_message_not_dropped(kb):
    app = ask(new_app(), "leave " * 500)
    assert not answers(app) and any("limited to 2,000" in w.value for w in app.warning)
    assert app.code and app.code[0].value.startswith("leave leave")
