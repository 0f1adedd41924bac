"""Chunking: sizes, structure, offsets and page spans, on parsed files built in memory."""

from __future__ import annotations

import itertools
import dataclasses
import random

import chunking_reference
import pytest

from kb.chunking import chunk_document, count_words, document_text, element_text, iter_chunks
from kb.records import CELL, Element, ParsedFile


def sentence(rng: random.Random, words: int = 12) -> str:
    vocabulary = ["leave", "policy", "employee", "manager", "approval", "days", "travel", "budget", "team", "office"]
    return " ".join(rng.choice(vocabulary) for _ in range(words)).capitalize() + "."


def paragraph(rng: random.Random, sentences: int) -> str:
    return " ".join(sentence(rng) for _ in range(sentences))


def chunk(parsed: ParsedFile, target_words: int = 300, **kwargs) -> list:
    return chunk_document(
        parsed, doc_id="doc", version=3, source="policies/leave.md", target_words=target_words, **kwargs
    )


def long_document(seed: int = 7) -> ParsedFile:
    """Sections of very different lengths, paragraphs of 1 to 12 sentences, a few list items, over 12 pages."""
    rng = random.Random(seed)
    elements = []
    for number in range(30):
        page = number // 3 + 1
        elements.append(Element(f"Section {number}", kind="title", page=page, level=number % 2))
        for _ in range(rng.randint(1, 9)):
            elements.append(Element(paragraph(rng, rng.randint(1, 12)), page=page))
        if number % 4 == 0:
            elements += [Element(sentence(rng, 6), kind="list_item", page=page) for _ in range(3)]
    return ParsedFile(elements=elements, pages=10, title="Leave Handbook")


def test_no_elements_no_chunks() -> None:
    assert chunk(ParsedFile(elements=[])) == []


def test_chunks_are_exact_spans_of_the_document_text() -> None:
    parsed = long_document()
    text = document_text(parsed)
    chunks = chunk(parsed)
    assert text == "\n\n".join(element_text(e) for e in parsed.elements)
    assert all(text[c.char_start : c.char_end] == c.text for c in chunks)
    assert [c.char_start for c in chunks] == sorted(c.char_start for c in chunks)
    assert all(a.char_end <= b.char_start for a, b in zip(chunks, chunks[1:]))


@pytest.mark.parametrize("target", [300, 120])
def test_chunk_sizes_stay_within_a_third_of_the_target(target: int) -> None:
    parsed = long_document()
    text = document_text(parsed)
    headings = {text.index(e.text) for e in parsed.elements if e.kind == "title"}
    chunks = chunk(parsed, target_words=target)
    for c in chunks:
        words = count_words(c.text)
        assert words <= round(target * 4 / 3)
        ends_section = c.char_end == len(text) or c.char_end + 2 in headings
        assert words >= round(target * 2 / 3) or ends_section, c.text[:80]
    assert sum(count_words(c.text) for c in chunks) == count_words(text)  # nothing lost, nothing repeated


def test_every_big_section_starts_a_chunk_named_after_it() -> None:
    rng = random.Random(1)
    elements = []
    for name in ("Eligibility", "Requests", "Appeals"):
        elements += [Element(name, kind="title"), Element(paragraph(rng, 15)), Element(paragraph(rng, 15))]
    chunks = chunk(ParsedFile(elements=elements))
    starts = {c.section: c.text.split("\n\n")[0] for c in chunks if c.text.split("\n\n")[0] == c.section}
    assert starts == {"Eligibility": "Eligibility", "Requests": "Requests", "Appeals": "Appeals"}
    assert all(c.section in ("Eligibility", "Requests", "Appeals") for c in chunks)
    for c in chunks:  # no chunk reaches into the next section
        assert not any(f"\n\n{name}\n\n" in c.text for name in ("Requests", "Appeals") if name != c.section)


def test_small_sections_merge_under_the_same_parent_only() -> None:
    elements = [
        Element("Benefits", kind="title", level=0),
        Element("Health", kind="title", level=1),
        Element("Health cover starts on day one."),
        Element("Dental", kind="title", level=1),
        Element("Dental cover starts after three months."),
        Element("Conduct", kind="title", level=0),
        Element("Be kind to colleagues."),
    ]
    chunks = chunk(ParsedFile(elements=elements))
    assert [c.text for c in chunks] == [
        "Benefits\n\nHealth\n\nHealth cover starts on day one.\n\nDental\n\nDental cover starts after three months.",
        "Conduct\n\nBe kind to colleagues.",
    ]
    assert [c.section for c in chunks] == ["Health", "Conduct"]  # the heading nearest the first words


def test_a_chunk_never_ends_on_a_heading() -> None:
    rng = random.Random(3)
    elements = [Element(paragraph(rng, 14)), Element("Part Two", kind="title"), Element("Scope", kind="title", level=1)]
    elements += [Element(paragraph(rng, 14)) for _ in range(4)]
    chunks = chunk(ParsedFile(elements=elements))
    headings = {"Part Two", "Scope"}
    assert all(c.text.split("\n\n")[-1] not in headings for c in chunks)
    assert chunks[1].text.startswith("Part Two\n\nScope\n\n") and chunks[1].section == "Scope"


def test_long_paragraph_is_split_between_sentences() -> None:
    rng = random.Random(5)
    chunks = chunk(ParsedFile(elements=[Element(paragraph(rng, 80))]))
    assert len(chunks) > 2
    assert all(c.text.endswith(".") for c in chunks)
    assert all(200 <= count_words(c.text) <= 400 for c in chunks[:-1])


def test_sentence_longer_than_a_chunk_is_split_between_words() -> None:
    text = " ".join(f"word{i}" for i in range(1000))
    chunks = chunk(ParsedFile(elements=[Element(text)]))
    assert len(chunks) == 3 and all(200 <= count_words(c.text) <= 400 for c in chunks)
    assert " ".join(c.text for c in chunks) == text


def test_text_without_spaces_is_still_split() -> None:
    chinese = "员工每年享有带薪年假。" * 150  # 1500 characters, no spaces
    chunks = chunk(ParsedFile(elements=[Element(chinese)]))
    assert len(chunks) >= 4
    assert all(count_words(c.text) <= 400 for c in chunks)
    assert "".join(c.text for c in chunks) == chinese


def test_tables_stay_whole_when_they_fit_and_split_by_rows_when_not() -> None:
    small = "Grade | Days\nA | 25\nB | 20"
    big = "\n".join(f"Row {i} | value {i} | note about row {i}" for i in range(200))
    chunks = chunk(ParsedFile(elements=[Element(small, kind="table"), Element(big, kind="table")]))
    assert chunks[0].text.startswith(small)
    rows = set(big.split("\n"))
    for c in chunks[1:]:
        assert set(c.text.split("\n")) <= rows  # only whole rows


def test_a_chunk_marks_its_table_rows_with_their_cells() -> None:
    rows = (("Grade", "Days", "Note"), *((f"G{i}", str(20 + i), "" if i % 2 else "capped") for i in range(60)))
    text = "\n".join(" | ".join(cell for cell in row if cell) for row in rows)
    cells = "\n".join(CELL.join(row) for row in rows)
    table = Element(text, kind="table", cells=cells, header=True)
    assert table.table_rows() == rows
    chunks = chunk(ParsedFile(elements=[Element("Leave by grade."), table, Element("Ask HR.")]), target_words=60)
    assert len(chunks) > 2 and chunks[-1].text.endswith("\n\nAsk HR.")
    assert chunks[-1].tables[-1].end == len(chunks[-1].text) - len("\n\nAsk HR.")  # prose is outside the span
    seen = []
    for c in chunks:
        for span in c.tables:
            assert c.text[span.start : span.end] == "\n".join(" | ".join(x for x in row if x) for row in span.rows)
            assert span.header == (span.rows[0] == rows[0])  # only the span that starts the table has its header
            seen += span.rows
    assert seen == list(rows)  # the chunker cuts this one element between rows, never inside one
    assert chunks[0].tables[0].start == len("Leave by grade.\n\n")
    unknown = chunk(ParsedFile(elements=[Element(text, kind="table")]))  # a table without its cells
    mismatched = chunk(ParsedFile(elements=[Element(text, kind="table", cells=cells.split("\n", 1)[1])]))
    assert unknown[0].tables == mismatched[0].tables == ()


def test_page_spans() -> None:
    rng = random.Random(9)
    elements = [Element(paragraph(rng, 5), page=page) for page in (1, 2, 2, 3, 3)]
    spans = [(c.page_start, c.page_end) for c in chunk(ParsedFile(elements=elements, pages=3), target_words=100)]
    assert spans[0][0] == 1 and spans[-1][1] == 3
    assert any(start < end for start, end in spans)  # a chunk that crosses pages says so
    unpaged = chunk(ParsedFile(elements=[Element("Just text.")]))
    assert (unpaged[0].page_start, unpaged[0].page_end) == (None, None)


def test_a_chunk_knows_where_each_of_its_pages_starts() -> None:
    elements = [Element("Leave is requested in the portal.", page=12), Element("Approval takes two days.", page=12),
                Element("Part-time staff accrue leave pro rata.", page=13)]
    (only,) = chunk(ParsedFile(elements=elements, pages=13), target_words=100)
    assert (only.page_start, only.page_end) == (12, 13)
    second_page = only.text.index("Part-time")
    assert only.page_starts == ((0, 12), (second_page, 13))
    assert only.page_at(0) == 12 and only.page_at(second_page - 1) == 12 and only.page_at(second_page) == 13
    unpaged = chunk(ParsedFile(elements=[Element("Just text.")]))[0]
    assert unpaged.page_starts == () and unpaged.page_at(3) is None


def test_identity_title_and_groups() -> None:
    rng = random.Random(11)
    parsed = ParsedFile(elements=[Element(paragraph(rng, 30)) for _ in range(4)])
    chunks = chunk(parsed, groups=("hr", "managers"))
    assert [c.chunk_id for c in chunks] == [f"doc:3:{i}" for i in range(len(chunks))]
    assert [c.seq for c in chunks] == list(range(len(chunks)))
    assert {(c.doc_id, c.version, c.source, c.title, c.groups, c.section) for c in chunks} == {
        ("doc", 3, "policies/leave.md", None, ("hr", "managers"), None)
    }
    assert chunks[0].context == "policies leave"  # the name from the path stands in for a missing title
    titled = chunk(ParsedFile(elements=[Element("Text.")], title="Leave Policy"))
    assert titled[0].title == "Leave Policy"


def test_chunks_carry_their_section_path_and_a_context_line() -> None:
    elements = [
        Element("Benefits", kind="title", level=0),
        Element("Health", kind="title", level=1),
        Element("Dental cover starts after one month."),
        Element("Conduct", kind="title", level=0),
        Element("Be kind."),
    ]
    chunks = chunk(ParsedFile(elements=elements, title="Staff Handbook"), target_words=5)
    by_text = {c.text.splitlines()[-1]: c for c in chunks}
    dental = by_text["Dental cover starts after one month."]
    assert dental.headings == ("Benefits", "Health")
    assert dental.context == "policies leave · Staff Handbook · Benefits · Health"
    assert by_text["Be kind."].headings == ("Conduct",)  # a heading of the same level replaces the path
    assert dental.indexed_text == dental.context + "\n" + dental.text
    assert "Staff Handbook" not in dental.text  # display stays the passage itself


def test_a_chunk_knows_under_which_heading_each_of_its_sentences_stands() -> None:
    elements = [
        Element("Requesting leave", kind="title"),
        Element("Ask two weeks ahead."),
        Element("LeaveNow portal", kind="title", level=1),
        Element("Use the LeaveNow portal."),
    ]
    (only,) = chunk(ParsedFile(elements=elements), target_words=300)
    portal = only.text.index("Use the LeaveNow")
    assert only.section == "Requesting leave"
    assert only.section_starts == ((0, "Requesting leave"), (only.text.index("LeaveNow portal"), "LeaveNow portal"))
    assert only.section_at(only.text.index("Ask two")) == "Requesting leave"
    assert only.section_at(portal) == "LeaveNow portal"


def test_list_items_stay_on_their_own_lines() -> None:
    elements = [Element("Bring:"), Element("A laptop", kind="list_item"), Element("A badge", kind="list_item")]
    assert chunk(ParsedFile(elements=elements))[0].text == "Bring:\n\n- A laptop\n\n- A badge"


def test_a_heading_longer_than_a_chunk_is_treated_as_text() -> None:
    rng = random.Random(13)
    elements = [Element("Intro", kind="title"), Element(paragraph(rng, 60), kind="title"), Element("Short.")]
    chunks = chunk(ParsedFile(elements=elements))
    assert all(count_words(c.text) <= 400 for c in chunks)
    assert {c.section for c in chunks} == {"Intro"}


def test_a_run_of_headings_is_still_cut_at_the_maximum() -> None:
    elements = [Element(f"Heading number {i}", kind="title") for i in range(300)]
    chunks = chunk(ParsedFile(elements=elements))
    assert len(chunks) > 1 and all(count_words(c.text) <= 400 for c in chunks)


# --- the streaming chunker: the same chunks as the list-based one, from a bounded window ----------------

WORDS = ["leave", "policy", "employee", "manager", "approval", "days", "travel", "budget", "team", "office",
         "a", "the", "of", "is", "Q3", "e-mail", "(see", "below)", "don't", "—", "§4.2"]  # fmt: skip
ENDINGS = [".", ".", ".", "!", "?", "…", '."', ".)", "。", ""]


def random_text(rng: random.Random, sentences: int, max_sentence_words: int = 30) -> str:
    """Sentences of varied length and punctuation; now and then one longer than a chunk, CJK, a long run
    without spaces, or a line break inside a paragraph."""
    parts = []
    for _ in range(sentences):
        roll = rng.random()
        if roll < 0.03:
            parts.append(" ".join(rng.choice(WORDS) for _ in range(rng.randint(150, 900))))  # no sentence end
        elif roll < 0.06:
            parts.append("员工每年享有带薪年假。" * rng.randint(1, 60))
        elif roll < 0.08:
            parts.append("x" * rng.randint(41, 500))
        else:
            words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, max_sentence_words)))
            parts.append(words.capitalize() + rng.choice(ENDINGS))
    joiners = [" ", " ", " ", "\n", "  "]
    return "".join(part + rng.choice(joiners) for part in parts).strip()


def random_document(rng: random.Random) -> ParsedFile:
    """Headings of several levels (runs of them, over-long ones), paragraphs, list items, small and big
    tables, pages that may be missing, and the odd empty element."""
    elements: list[Element] = []
    paged = rng.random() < 0.6
    page = 1
    for _ in range(rng.randint(0, 60)):
        if paged and rng.random() < 0.15:
            page += rng.choice([1, 1, 1, 2, 0, -1])
        where = max(page, 1) if paged else None
        roll = rng.random()
        if roll < 0.25:
            words = rng.randint(1, 8) if rng.random() < 0.97 else rng.randint(300, 600)
            text = " ".join(rng.choice(WORDS) for _ in range(words)).title()
            elements.append(Element(text, kind="title", page=where, level=rng.choice([0, 0, 1, 1, 2, 3])))
        elif roll < 0.35:
            elements.append(Element(random_text(rng, rng.randint(1, 2), 10), kind="list_item", page=where))
        elif roll < 0.42:
            rows = rng.choice([2, 5, 30, 150])
            table = "\n".join(" | ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 6))) for _ in range(rows))
            elements.append(Element(table, kind="table", page=where))
        elif roll < 0.44:
            elements.append(Element(rng.choice(["", " ", "\n"]), kind=rng.choice(["text", "title"]), page=where))
        else:
            elements.append(Element(random_text(rng, rng.randint(1, 25)), page=where))
    title = rng.choice([None, "Handbook", ""])
    return ParsedFile(elements=elements, pages=page if paged else None, title=title)


def without_page_starts(chunks: list) -> list:
    """Chunks as the reference (written before chunks kept their page starts and section paths, and when
    a missing title became the file's stem) makes them; those are checked on their own
    (test_a_chunk_knows_where_each_of_its_pages_starts, test_chunks_carry_their_section_path_and_a_context_line)."""
    return [dataclasses.replace(c, page_starts=(), headings=(), section_starts=(), title=c.title or "leave") for c in chunks]


def reference_chunks(parsed: ParsedFile, target_words: int, groups: tuple[str, ...] = ()) -> list:
    return chunking_reference.chunk_document(
        parsed, doc_id="doc", version=3, source="policies/leave.md", target_words=target_words, groups=groups
    )


@pytest.mark.parametrize("seed", range(6))
def test_streaming_chunks_equal_the_reference_on_generated_documents(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(40):
        parsed = random_document(rng)
        target = rng.choice([12, 40, 120, 300, 300])
        groups = rng.choice([(), ("hr",)])
        expected = reference_chunks(parsed, target, groups)
        streamed = list(
            iter_chunks(
                iter(parsed.elements), title=parsed.title, doc_id="doc", version=3, source="policies/leave.md",
                target_words=target, groups=groups,
            )
        )
        assert without_page_starts(streamed) == expected
        assert without_page_starts(chunk(parsed, target_words=target, groups=groups)) == expected


def test_streaming_chunks_equal_the_reference_on_the_fixtures() -> None:
    rng = random.Random(1)
    fixtures = [long_document(seed) for seed in (7, 8, 9)] + [
        ParsedFile(elements=[Element(paragraph(rng, 80))]),
        ParsedFile(elements=[Element(" ".join(f"word{i}" for i in range(1000)))]),
        ParsedFile(elements=[Element("员工每年享有带薪年假。" * 150)]),
        ParsedFile(elements=[Element(f"Heading number {i}", kind="title") for i in range(300)]),
        ParsedFile(elements=[Element("Intro", kind="title"), Element(paragraph(rng, 60), kind="title")]),
        ParsedFile(elements=[]),
        # empty headings (zero-length units) at the end, the start and inside: the separators around them count
        ParsedFile(elements=[Element("Text."), Element("", kind="title")]),
        ParsedFile(elements=[Element("", kind="title"), Element(""), Element("Body.")]),
        ParsedFile(elements=[Element("A."), Element(" "), Element("", kind="title"), Element("", kind="title")]),
    ]
    for parsed in fixtures:
        for target in (120, 300):
            assert without_page_starts(chunk(parsed, target_words=target)) == reference_chunks(parsed, target)


def test_streaming_reads_only_about_one_chunk_ahead() -> None:
    """Over an endless stream of paragraphs and headings, each chunk arrives after reading at most about
    two chunks past its end: memory stays bounded however long the document is."""
    rng = random.Random(4)
    pulled_words = 0

    def endless():
        nonlocal pulled_words
        for number in itertools.count(1):
            element = (
                Element(f"Part {number}", kind="title", level=number % 3) if number % 40 == 0
                else Element(sentence(rng, rng.randint(3, 40)))
            )
            pulled_words += count_words(element.text)
            yield element

    stream = iter_chunks(endless(), title=None, doc_id="doc", version=1, source="big.txt", target_words=300)
    through_chunk_end = 0
    for c in itertools.islice(stream, 300):
        through_chunk_end += count_words(c.text)
        assert pulled_words - through_chunk_end <= 2 * 400 + 40  # two chunks and one paragraph at most


def test_a_giant_sentence_is_cut_without_holding_all_its_words() -> None:
    text = " ".join(f"w{i}" for i in range(200_000))
    chunks = list(iter_chunks([Element(text)], title=None, doc_id="d", version=1, source="s.txt"))
    assert len(chunks) == 200_000 // 300 + (1 if 200_000 % 300 else 0)
    assert " ".join(c.text for c in chunks) == text
