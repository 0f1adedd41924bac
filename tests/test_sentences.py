"""The one sentence splitter (kb.sentences) and the one spelling of a chunk's pages (Chunk.pages_label)."""

from kb.records import Chunk
from kb.sentences import sentence_spans, split_sentences


def test_sentences_end_before_a_capital_or_digit_and_keep_their_markers():
    text = "Leave is requested in the HR portal. [1] Your manager approves it. [1][2] 30 days are allowed."
    assert split_sentences(text) == [
        "Leave is requested in the HR portal. [1]", "Your manager approves it. [1][2]", "30 days are allowed."]


def test_an_abbreviation_does_not_end_a_sentence_unless_asked():
    text = "Claims are paid monthly, e.g. On the last Friday. Ask finance."
    assert split_sentences(text) == ["Claims are paid monthly, e.g. On the last Friday.", "Ask finance."]
    assert split_sentences(text, abbreviations=False) == [
        "Claims are paid monthly, e.g.", "On the last Friday.", "Ask finance."]


def test_spans_index_the_text_and_skip_blanks():
    text = "  One.  Two!\n\n"
    assert [text[s:e] for s, e in sentence_spans(text)] == ["  One.", "Two!"]


def chunk(page_start: int | None, page_end: int | None) -> Chunk:
    return Chunk("d:1:0", "d", 1, 0, "d.pdf", "text", page_start=page_start, page_end=page_end)


def test_pages_label():
    assert chunk(3, 3).pages_label == "page 3"
    assert chunk(3, None).pages_label == "page 3"
    assert chunk(3, 4).pages_label == "pages 3–4"
    assert chunk(None, None).pages_label == ""
