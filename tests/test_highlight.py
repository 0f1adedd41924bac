"""Supporting words are marked, and passage or answer text can never become live HTML or Markdown."""

from __future__ import annotations

import re
import string

from kb.embedding import Bm25Encoder
from kb.highlight import (
    Segment, answer_html, clip, excerpt_start, focus_segments, mark_words, markdown_literal, passage_html,
    passage_sentences, supporting_spans,
)
from kb.records import Claim

TERMS = Bm25Encoder().query_terms
HOSTILE = "<script>alert(1)</script> ![x](http://evil.example/i.png) [click](javascript:alert(1)) <b>hi</b>"


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


LEAVE = (
    "Requesting leave\n\nAsk your manager first. Plan ahead for the holidays.\n\nLeaveNow portal\n\n"
    "To request annual leave, submit a request in the LeaveNow portal at least two weeks in advance. "
    "Your manager approves or declines the request within three working days."
)


def test_passage_sentences_split_headings_paragraphs_and_sentences():
    spans = passage_sentences(LEAVE)
    assert [LEAVE[s:e] for s, e in spans][:4] == [
        "Requesting leave", "Ask your manager first.", "Plan ahead for the holidays.", "LeaveNow portal",
    ]
    assert len(spans) == 6


def test_the_supporting_sentence_is_the_one_holding_the_claims_terms():
    claim = "Leave is requested in the LeaveNow portal two weeks ahead."
    (span,) = supporting_spans(LEAVE, [claim], TERMS)
    assert LEAVE[span[0]:span[1]].startswith("To request annual leave") and LEAVE[span[1] - 1] == "."
    # a claim joining two sentences gets both; one sharing a single word of many gets none
    joined = supporting_spans(LEAVE, [claim + " Managers approve or decline within three working days."], TERMS)
    assert [LEAVE[s:e][:10] for s, e in joined] == ["To request", "Your manag"]
    assert supporting_spans(LEAVE, ["Holidays on Mars are booked through mission control by astronauts."], TERMS) == []
    assert supporting_spans(LEAVE, [""], TERMS) == []


def test_only_words_inside_the_supporting_sentence_are_marked():
    (span,) = supporting_spans(LEAVE, ["Submit leave requests in the LeaveNow portal."], TERMS)
    segments = focus_segments(LEAVE, [span], "Submit leave requests in the LeaveNow portal", TERMS)
    assert "".join(s.text for s in segments) == LEAVE
    assert all(s.focus for s in segments if s.marked)  # "Requesting leave" above stays unmarked
    assert "".join(s.text for s in segments if s.focus) == LEAVE[span[0]:span[1]]
    html = passage_html(segments)
    assert html.count('<span class="kb-support">') == 1
    assert '<span class="kb-support">To <mark>request</mark> annual <mark>leave</mark>, <mark>submit</mark> a' in html
    assert "declines the request within" in html  # the same word after the supporting sentence is not marked
    assert "Requesting leave\n\nAsk" in html  # untouched outside the supporting sentence


def test_a_card_opens_just_before_a_supporting_sentence_deep_in_the_passage():
    (span,) = supporting_spans(LEAVE, ["Managers approve or decline requests within three working days."], TERMS)
    start = excerpt_start(LEAVE, [span], lead_chars=60)
    assert LEAVE[start:].startswith("To request annual leave")  # the sentence before the supporting one
    assert excerpt_start(LEAVE, [span], lead_chars=len(LEAVE)) == 0 and excerpt_start(LEAVE, []) == 0
    segments = focus_segments(LEAVE, [span], "approve", TERMS)
    assert "".join(s.text for s in clip(segments, start)) == LEAVE[start:]
    assert clip(segments, start)[-1].focus


def test_focus_html_escapes_hostile_passage_text():
    text = HOSTILE + " Leave is approved by <i>managers</i>. <img src=x onerror=alert(1)> leave"
    spans = supporting_spans(text, ["Leave is approved by managers."], TERMS)
    html = passage_html(focus_segments(text, spans, "leave approved managers", TERMS))
    assert "<script" not in html and "<img" not in html and "<i>" not in html and "<b>" not in html
    assert "&lt;i&gt;<mark>managers</mark>&lt;/i&gt;" in html
    tags = re.findall(r"<[^>]*>", html)
    assert set(tags) == {"<mark>", "</mark>", '<span class="kb-support">', "</span>"}


def claim(text: str, answer: str, supported: bool, reason: str = "") -> Claim:
    start = answer.index(text)
    return Claim(text, (1,), supported, reason, (), start, start + len(text))


def test_an_unsupported_sentence_is_marked_with_its_reason_and_stays_in_place():
    answer = "Submit it in the portal [1]. Managers reply within 14 days [1]. Ask HR."
    claims = [claim("Submit it in the portal [1].", answer, True),
              claim("Managers reply within 14 days [1].", answer, False, "14 is not in [1]")]
    html = answer_html(answer, claims)
    assert html.startswith("Submit it in the portal <b>[1]</b>. ")  # a supported sentence is left as it is
    assert ('<span class="kb-unsupported">Managers reply within 14 days <b>[1]</b>.</span>'
            '<span class="kb-flag" title="not supported: 14 is not in [1]">\u26a0 not supported: 14 is not in [1]</span>'
            in html)
    assert html.endswith(" Ask HR.")
    assert answer_html(answer, []) == answer_html(answer)


def test_an_unsupported_sentence_and_its_reason_are_escaped():
    hostile = 'Pay <script>x()</script> "now" [1].'
    answer = f"Intro. {hostile}"
    html = answer_html(answer, [claim(hostile, answer, False, '<img src=x onerror="alert(1)"> is not in [1]')])
    assert "<script" not in html and "<img" not in html and "&lt;script&gt;" in html
    assert 'title="not supported: &lt;img src=x onerror=&quot;alert(1)&quot;&gt; is not in [1]"' in html
    # a claim that is not a span of this text (another answer's) changes nothing
    assert answer_html("Short [1].", [claim(hostile, answer, False, "x")]) == answer_html("Short [1].")


def test_a_table_passage_is_shown_as_a_table_of_escaped_cells(tmp_path):
    from kb.chunking import chunk_document
    from kb.highlight import Segment, focus_segments, passage_with_tables_html
    from kb.parsing import parse_file
    from kb.embedding import Bm25Encoder

    rows = ["Plan,Employee cost,Note"] + [f"Plan {n},{n * 10},ok" for n in range(150)] + ["Gold,4500,<script>x</script>"]
    path = tmp_path / "plans.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    chunks = chunk_document(parse_file(path), doc_id="p", version=1, source="plans.csv")
    last = next(c for c in chunks if "Gold" in c.text)
    assert last.tables and last.tables[0].header
    terms = Bm25Encoder().query_terms
    gold = last.text.index("Gold")
    spans = [(gold, last.text.index("\n", gold) if "\n" in last.text[gold:] else len(last.text))]
    segments = focus_segments(last.text, spans, "Gold plan cost", terms)
    shown = passage_with_tables_html(segments, last.tables, start=gold)  # opened at the Gold row
    assert '<table class="kb-table"><tr><th>Plan</th><th>Employee cost</th><th>Note</th></tr>' in shown  # header kept
    assert '<tr class="kb-support"><td><mark>Gold</mark></td><td>4500</td>' in shown
    assert "<script>" not in shown and "&lt;script&gt;x&lt;/script&gt;" in shown
    assert "Plan 0<" not in shown  # rows before the opening point are left out
    assert passage_with_tables_html([Segment("plain <b>text</b>")], ()) == "plain &lt;b&gt;text&lt;/b&gt;"
