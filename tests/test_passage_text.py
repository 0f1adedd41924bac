"""Passages read as text: no Markdown link syntax, no literal "\\n" from spreadsheet cells, a slide per passage."""

from __future__ import annotations

from pathlib import Path

from kb.chunking import chunk_document
from kb.parsing import parse_file
from kb.parsing.markdown_links import plain_links
from kb.records import Element, ParsedFile


def texts(path: Path) -> list[str]:
    return [element.text for element in parse_file(path).elements]


def test_markdown_links_read_as_their_text(tmp_path: Path) -> None:
    source = """# Travel

- Get approval via [email][authorizing-official] from your [authorizing
  official][who-is-my-ao] or through the [event request process][missing].
- Book in [Concur](https://travel.gsa.gov "Concur") or see [the guide]({% page "/guide/" %}).
- All \\[internal opportunities]({% page "/detail" %}) are shared; see ![a map](map.png) too.
- A bare URL stays: https://example.gov/page and so does <https://example.gov/auto>.

Keep scores[0]['rouge-l'] and a[i][j] as written.

<div class="accordion" markdown=1>
- Create a bio in the [GSA template](https://docs.google.com/document/d/1).
</div>

See the note.[^1]

[^1]: The note says more.

```
a [link](kept.md) inside code
```

[authorizing-official]: {% page "/faq/#approval" %}
[who-is-my-ao]: https://example.gov/ao
"""
    path = tmp_path / "travel.md"
    path.write_text(source, encoding="utf-8")
    found = "\n".join(texts(path))
    assert "Get approval via email from your authorizing official or through the event request process." in found
    assert "Book in Concur or see the guide." in found
    assert "All internal opportunities are shared; see a map too." in found
    assert "https://example.gov/page" in found and "https://example.gov/auto" in found
    assert "Keep scores[0]['rouge-l'] and a[i][j] as written." in found
    assert "Create a bio in the GSA template." in found
    assert "See the note." in found and "Note 1: The note says more." in found
    assert "a [link](kept.md) inside code" in found  # code is code
    assert "{%" not in found and "authorizing-official" not in found and "who-is-my-ao" not in found


def test_plain_links_on_their_own() -> None:
    assert plain_links("via [email][ao] and [CI][] now") == "via email and CI now"
    assert plain_links("[wiki](https://en.wikipedia.org/wiki/Foo_(bar)) here") == "wiki here"
    assert plain_links("[x]: https://example.gov\n[y]: #\ntext") == "text"
    assert plain_links("[Note]: see below") == "[Note]: see below"  # prose, not a definition
    assert plain_links("a[i][j] and f[x](y)") == "a[i][j] and f[x](y)"  # code-like: a word before "["
    assert plain_links("no brackets at all") == "no brackets at all"


def test_line_breaks_in_xlsx_cells_read_as_spaces_and_a_typed_backslash_n_stays(tmp_path: Path) -> None:
    import openpyxl

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "Results"
    sheet.append(["Segment", "January–June\n2023", "Trading\r\noperating profit"])
    sheet.append(["Zone NA", 12553, "C:\\new\\tables"])
    sheet.append(["Zone EUR", 9467, "tab\there"])
    path = tmp_path / "results.xlsx"
    workbook.save(str(path))
    table = next(element.text for element in parse_file(path).elements if element.kind == "table")
    assert table.split("\n") == [
        "Segment | January–June 2023 | Trading operating profit",
        "Zone NA | 12553 | C:\\new\\tables",
        "Zone EUR | 9467 | tab here",
    ]


def test_csv_keeps_a_typed_backslash_n_and_reads_a_quoted_line_break_as_a_space(tmp_path: Path) -> None:
    path = tmp_path / "paths.csv"
    path.write_text('name,path,note\nshare,C:\\new\\docs,"two\nlines"\n', encoding="utf-8")
    [table] = texts(path)
    assert table.split("\n") == ["name | path | note", "share | C:\\new\\docs | two lines"]


def test_each_slide_is_its_own_passage_with_its_number(tmp_path: Path) -> None:
    import pptx

    deck = pptx.Presentation()
    title = deck.slides.add_slide(deck.slide_layouts[0])
    title.shapes.title.text = "Harbour Renewal Plan"
    title.placeholders[1].text = "Board briefing, spring"
    for heading, bullet in [("Budget", "The budget is four million."), ("Timeline", "Work starts in May.")]:
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = heading
        slide.placeholders[1].text_frame.text = bullet
    path = tmp_path / "plan.pptx"
    deck.save(str(path))
    chunks = chunk_document(parse_file(path), doc_id="d", version=1, source="plan.pptx")
    assert [(c.text, c.pages, c.section) for c in chunks] == [
        ("Harbour Renewal Plan\n\nBoard briefing, spring", (1, 1), "Harbour Renewal Plan"),
        ("Budget\n\nThe budget is four million.", (2, 2), "Budget"),
        ("Timeline\n\nWork starts in May.", (3, 3), "Timeline"),
    ]


def test_short_sections_of_other_paged_formats_still_join() -> None:
    parsed = ParsedFile(
        elements=[
            Element("Budget", kind="title", page=1), Element("Four million.", page=1),
            Element("Timeline", kind="title", page=2), Element("Starts in May.", page=2),
        ],
        pages=2,
    )
    [chunk] = chunk_document(parsed, doc_id="d", version=1, source="plan.pdf")
    assert chunk.pages == (1, 2)
