"""Supporting words are marked, and passage or answer text can never become live HTML or Markdown."""

from __future__ import annotations

import re
import string

from kb.embedding import Bm25Encoder
from kb.highlight import Segment, answer_html, mark_words, markdown_literal, passage_html, supporting_text

TERMS = Bm25Encoder().query_terms
HOSTILE = "<script>alert(1)</script> ![x](http://evil.example/i.png) [click](javascript:alert(1)) <b>hi</b>"


def test_supporting_text_is_the_claims_that_cite_the_passage():
    answer = "(Extractive answer.)\n\nSubmit it in the HR portal [1]. Receipts are reimbursed [2][1].\n\nAsk HR [3]"
    assert supporting_text(answer, 1) == "Submit it in the HR portal\nReceipts are reimbursed"
    assert supporting_text(answer, 2) == "Receipts are reimbursed"
    assert supporting_text(answer, 3) == "Ask HR"
    assert supporting_text(answer, 4) == ""


def test_words_are_marked_by_stem_and_stop_words_never():
    text = "Requests go to the HR portal; the manager approves them."
    segments = mark_words(text, "request in the HR portals", TERMS)
    marked = [s.text for s in segments if s.marked]
    assert marked == ["Requests", "HR portal"]  # neighbours join; "the" supports nothing
    assert "".join(s.text for s in segments) == text
    assert mark_words("some text", "", TERMS) == [Segment("some text")]


def test_passage_html_escapes_everything_but_its_own_marks():
    html = passage_html(mark_words(HOSTILE + " leave", "leave", TERMS))
    assert html.endswith("<mark>leave</mark>")
    assert "<script" not in html and "<b>" not in html and "&lt;script&gt;" in html
    assert html.count("<") == html.count("<mark>") + html.count("</mark>")


def test_answer_html_escapes_the_text_and_bolds_markers():
    html = answer_html("Use the portal [1]. " + HOSTILE)
    assert "<b>[1]</b>" in html and "<script" not in html and "&lt;b&gt;hi&lt;/b&gt;" in html


def test_markdown_literal_escapes_every_markup_character():
    original = HOSTILE + " **bold** $x$ :red[red] www.evil.example a@b.example \\ \n    code\n- item"
    text = markdown_literal(original)
    unescaped = re.sub(r"\\[^\w\s]", "", text)
    assert not set(unescaped) & set(string.punctuation)  # every punctuation character is escaped
    for address in ("www.evil", "a@b", "http://"):  # bare addresses do not even look like addresses
        assert address not in text.replace("\\", "")
    assert "\n    " not in text  # no indented code block
    assert re.sub(r"\\(.)", r"\1", text).replace("\u2060", "").replace("  \n", "\n") == original.replace("\n    ", "\n")
