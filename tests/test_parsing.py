"""Parsing: every supported format from fixtures built on the fly, and every way a user's file can fail."""

from __future__ import annotations

import io
import random
import zipfile
from email.message import EmailMessage
from pathlib import Path

import pytest

from kb.chunking import chunk_document, count_words
from kb.parsing import decode_text, detect, detect_type, parse_file, partition
from kb.parsing.delimited import TABLE_PART_WORDS
from kb.parsing.pdf import running_title
from kb.parsing.titles import fallback_title, real_title
from kb.records import Element, ParseError, document_name

BODY = (  # a paragraph as a PDF lays it out: full lines, then a short last one
    "Employees accrue paid leave every month and may carry unused days into the next calendar year",
    "provided that the total balance never exceeds forty days at the end of any quarter of the year",
    "and that their manager has approved it.",
)


def write(tmp_path: Path, name: str, data: bytes | str) -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def make_pdf(pages: list[list[str]], title: str | None = None, modified: str | None = None) -> bytes:
    """A minimal valid PDF with one Helvetica text line per entry, top to bottom."""

    def literal(text: str) -> str:
        return "(" + text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ")"

    font = "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
    objects = ["<< /Type /Catalog /Pages 2 0 R >>", "", font]
    kids = []
    for lines in pages:
        shown = " T* ".join(f"{literal(line)} Tj" for line in lines)
        stream = f"BT /F1 10 Tf 14 TL 40 760 Td {shown} ET"
        objects.append(f"<< /Length {len(stream.encode('cp1252'))} >>\nstream\n{stream}\nendstream")
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
            f"/Contents {len(objects)} 0 R >>"
        )
        kids.append(f"{len(objects)} 0 R")
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(kids)} >>"
    if title or modified:
        entries = (f"/Title {literal(title)} " if title else "") + (f"/ModDate {literal(modified)}" if modified else "")
        objects.append(f"<< {entries} >>")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode("cp1252")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    info = f" /Info {len(objects)} 0 R" if title or modified else ""
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R{info} >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def make_docx(path: Path) -> Path:
    import docx
    from docx.oxml import OxmlElement

    document = docx.Document()
    document.add_heading("Leave Policy", level=1)
    document.add_paragraph("Employees accrue paid leave every month.")
    document.add_heading("Carry-over", level=2)
    document.add_paragraph("Unused days carry into the next year.")
    table = document.add_table(rows=2, cols=2)
    for row, cells in zip(table.rows, [("Grade", "Days"), ("A", "25")]):
        for cell, value in zip(row.cells, cells):
            cell.text = value
    document.add_page_break()
    paragraph = document.add_paragraph()
    paragraph.add_run()._r.append(OxmlElement("w:lastRenderedPageBreak"))  # what Word writes where a page began
    paragraph.add_run("Second page text about sick leave.")
    document.save(str(path))
    return path


def make_pptx(path: Path) -> Path:
    import pptx

    deck = pptx.Presentation()
    for title, bullet in [("Quarterly Review", "Revenue grew in every region."), ("Next Steps", "Hire two engineers.")]:
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = title
        slide.placeholders[1].text_frame.text = bullet
    deck.save(str(path))
    return path


def make_xlsx(path: Path) -> Path:
    import openpyxl

    workbook = openpyxl.Workbook()
    workbook.active.title = "Budget"
    workbook.active.append(["Team", "Amount"])
    workbook.active.append(["Design", 1200])
    workbook.create_sheet("Staff").append(["Name", "Role"])
    workbook.save(str(path))
    return path


def make_eml(path: Path) -> Path:
    message = EmailMessage()
    message["Subject"] = "Office closure on Friday"
    message["From"] = "hr@example.com"
    message["To"] = "all@example.com"
    message.set_content("The office is closed on Friday for maintenance.\n\nPlease work from home.\n")
    path.write_bytes(bytes(message))
    return path


def texts(parsed) -> list[tuple[str, str]]:
    return [(element.kind, element.text) for element in parsed.elements]


def png_bytes() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buffer, format="PNG")
    return buffer.getvalue()


def zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("notes.txt", "hello")
    return buffer.getvalue()


# --- formats ---------------------------------------------------------------------------------------------


def test_markdown_keeps_headings_lists_and_front_matter_title(tmp_path: Path) -> None:
    source = (
        "---\ntitle: Travel Guide\nlayout: page\n---\n"
        "# Booking\n\nBook in Concur.\n\n## Hotels\n\n- Use the rate\n- Keep receipts\n"
    )
    parsed = parse_file(write(tmp_path, "travel.md", source))
    assert texts(parsed) == [
        ("title", "Travel Guide"),
        ("title", "Booking"),
        ("text", "Book in Concur."),
        ("title", "Hotels"),
        ("list_item", "Use the rate"),
        ("list_item", "Keep receipts"),
    ]
    assert parsed.title == "Travel Guide"
    assert [e.level for e in parsed.elements if e.kind == "title"] == [0, 0, 1]
    assert parsed.pages is None


def test_html_headings_paragraphs_and_table_rows(tmp_path: Path) -> None:
    html = (
        "<html><body><h1>Expenses</h1><p>Meals are reimbursed.</p><h2>Limits</h2>"
        "<table><tr><th>Item</th><th>Limit</th></tr><tr><td>Lunch</td><td>$20</td></tr></table></body></html>"
    )
    parsed = parse_file(write(tmp_path, "expenses.html", html))
    assert texts(parsed) == [
        ("title", "Expenses"),
        ("text", "Meals are reimbursed."),
        ("title", "Limits"),
        ("table", "Item | Limit\nLunch | $20"),
    ]
    assert parsed.title == "Expenses"


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-16-be", "utf-32"])
def test_text_in_any_unicode_encoding(tmp_path: Path, encoding: str) -> None:
    data = "Café rules\n\nThe café opens at nine.\n".encode(encoding)
    if encoding == "utf-16-be":
        data = b"\xfe\xff" + data  # the codec itself writes no byte-order mark
    parsed = parse_file(write(tmp_path, "cafe.txt", data))
    assert [e.text for e in parsed.elements] == ["Café rules", "The café opens at nine."]


def test_text_with_invalid_bytes_and_control_characters_still_parses(tmp_path: Path) -> None:
    data = b"Our caf\xe9 opens at nine\x00 and closes at five on weekdays.\n\nRefund\xe2\x80\x8b window.\n"
    parsed = parse_file(write(tmp_path, "broken.txt", data))
    assert len(parsed.elements) == 2
    assert "\x00" not in parsed.elements[0].text
    assert parsed.elements[1].text == "Refund window."  # zero-width space removed


def test_plain_text_headings_are_never_guessed(tmp_path: Path) -> None:
    text = "QUARTERLY RESULTS\n\nRevenue Grew Strongly\n\nIt rose by ten percent.\n"
    parsed = parse_file(write(tmp_path, "notes.txt", text))
    assert {e.kind for e in parsed.elements} == {"text"}


def test_csv_and_tsv_become_tables(tmp_path: Path) -> None:
    csv = parse_file(write(tmp_path, "teams.csv", "team,city\nBlues,STL\nFlyers,PHI\n"))
    tsv = parse_file(write(tmp_path, "teams.tsv", "team\tcity\nBlues\tSTL\n"))
    assert texts(csv) == [("table", "team | city\nBlues | STL\nFlyers | PHI")]
    assert texts(tsv) == [("table", "team | city\nBlues | STL")]


def test_ragged_csv_is_read_as_text(tmp_path: Path) -> None:
    parsed = parse_file(write(tmp_path, "notes.csv", "a, b\nc\nd, e, f, g\nh, i\n"))
    assert "d, e, f, g" in " ".join(e.text for e in parsed.elements)


def test_email_subject_is_the_title(tmp_path: Path) -> None:
    parsed = parse_file(make_eml(tmp_path / "closure.eml"))
    assert parsed.title == "Office closure on Friday"
    assert parsed.elements[0].kind == "title"
    assert "The office is closed on Friday for maintenance." in [e.text for e in parsed.elements]


def test_encrypted_email(tmp_path: Path) -> None:
    source = (
        "Subject: Salaries\nContent-Type: multipart/encrypted; boundary=b; protocol=\"application/pgp-encrypted\"\n\n"
        "--b\nContent-Type: application/pgp-encrypted\n\nVersion: 1\n--b\n"
        "Content-Type: application/octet-stream\n\n-----BEGIN PGP MESSAGE-----\nhQEMA\n--b--\n"
    )
    with pytest.raises(ParseError, match=r"^password-protected \(encrypted e-mail\)$"):
        parse_file(write(tmp_path, "salaries.eml", source))


def test_docx_headings_tables_and_page_breaks(tmp_path: Path) -> None:
    parsed = parse_file(make_docx(tmp_path / "policy.docx"))
    assert texts(parsed)[:5] == [
        ("title", "Leave Policy"),
        ("text", "Employees accrue paid leave every month."),
        ("title", "Carry-over"),
        ("text", "Unused days carry into the next year."),
        ("table", "Grade | Days\nA | 25"),
    ]
    assert parsed.title == "Leave Policy"
    assert [e.level for e in parsed.elements if e.kind == "title"] == [0, 1]
    assert parsed.elements[-1].text == "Second page text about sick leave."
    assert parsed.elements[-1].page == 2 and parsed.pages == 2


def test_pptx_slides_are_pages(tmp_path: Path) -> None:
    parsed = parse_file(make_pptx(tmp_path / "review.pptx"))
    assert [(e.kind, e.text, e.page) for e in parsed.elements] == [
        ("title", "Quarterly Review", 1),
        ("text", "Revenue grew in every region.", 1),
        ("title", "Next Steps", 2),
        ("text", "Hire two engineers.", 2),
    ]
    assert parsed.pages == 2 and parsed.title == "Quarterly Review"


def test_xlsx_one_table_per_sheet_under_its_name(tmp_path: Path) -> None:
    parsed = parse_file(make_xlsx(tmp_path / "budget.xlsx"))
    assert texts(parsed) == [
        ("title", "Budget"),
        ("table", "Team | Amount\nDesign | 1200"),
        ("title", "Staff"),
        ("table", "Name | Role"),
    ]
    assert parsed.pages is None and parsed.title is None  # sheet names are not the document's title


def test_pdf_pages_paragraphs_and_headings(tmp_path: Path) -> None:
    pdf = make_pdf(
        [["Leave Policy", *BODY, "Ask HR for details."], ["Sick Leave", *BODY]],
        title="Employee Handbook",
    )
    parsed = parse_file(write(tmp_path, "handbook.pdf", pdf))
    assert parsed.pages == 2 and parsed.title == "Employee Handbook"
    assert [(e.kind, e.page) for e in parsed.elements] == [
        ("title", 1), ("text", 1), ("text", 1), ("title", 2), ("text", 2),
    ]  # fmt: skip
    assert parsed.elements[0].text == "Leave Policy"
    assert parsed.elements[1].text == " ".join(BODY)  # wrapped lines joined into one paragraph
    assert parsed.elements[2].text == "Ask HR for details."


def test_pdf_running_headers_and_page_numbers_are_dropped(tmp_path: Path) -> None:
    topics = ["holidays", "sick days", "parental leave", "sabbaticals"]
    pages = [
        ["ACME Corp Handbook", f"This chapter covers {topic}.", *BODY, f"Ask about {topic}.", f"Page {n} of 4"]
        for n, topic in enumerate(topics, 1)
    ]
    parsed = parse_file(write(tmp_path, "running.pdf", make_pdf(pages)))
    page_two = ["This chapter covers sick days.", " ".join(BODY), "Ask about sick days."]
    assert [e.text for e in parsed.elements if e.page == 2] == page_two
    assert all("ACME" not in e.text and "Page" not in e.text for e in parsed.elements)


def test_pdf_bullets_become_list_items(tmp_path: Path) -> None:
    parsed = parse_file(write(tmp_path, "list.pdf", make_pdf([[BODY[0] + ".", "• First item", "• Second item"]])))
    assert texts(parsed)[1:] == [("list_item", "First item"), ("list_item", "Second item")]


# --- what can go wrong --------------------------------------------------------------------------------------


def test_encrypted_pdf(tmp_path: Path) -> None:
    import pypdf

    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(make_pdf([BODY]))))
    writer.encrypt("secret")
    buffer = io.BytesIO()
    writer.write(buffer)
    with pytest.raises(ParseError, match="^password-protected$"):
        parse_file(write(tmp_path, "locked.pdf", buffer.getvalue()))


def test_corrupt_pdf(tmp_path: Path) -> None:
    with pytest.raises(ParseError, match="^file is damaged or not a valid PDF$") as caught:
        parse_file(write(tmp_path, "broken.pdf", make_pdf([BODY])[:200]))
    assert caught.value.__cause__ is not None


def test_encrypted_docx(tmp_path: Path) -> None:
    from msoffcrypto.format.ooxml import OOXMLFile

    buffer = io.BytesIO()
    with make_docx(tmp_path / "plain.docx").open("rb") as plain:
        OOXMLFile(plain).encrypt("secret", buffer)
    with pytest.raises(ParseError, match="^password-protected$"):
        parse_file(write(tmp_path, "locked.docx", buffer.getvalue()))


@pytest.mark.parametrize(
    "data",
    [random.Random(0).randbytes(4096), b"PK\x03\x04 not a real docx", "truncated", None],
    ids=["random-bytes", "zip-signature-only", "truncated", "broken-xml"],
)
def test_damaged_docx(tmp_path: Path, data: bytes | str | None) -> None:
    if data == "truncated":
        whole = make_docx(tmp_path / "whole.docx").read_bytes()
        data = whole[: len(whole) // 2]
    if data is None:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("[Content_Types].xml", "<Types/>")
            archive.writestr("word/document.xml", "<w:document><unclosed>")
        data = buffer.getvalue()
    with pytest.raises(ParseError, match="^file is damaged or not a valid Word document$"):
        parse_file(write(tmp_path, "report.docx", data))


def test_office_file_that_unpacks_too_large(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(detect, "MAX_UNPACKED_BYTES", 1000)
    with pytest.raises(ParseError, match="unpacks to .* too large"):
        parse_file(make_docx(tmp_path / "bomb.docx"))


def test_mislabelled_extension_is_parsed_as_what_it_is(tmp_path: Path) -> None:
    path = write(tmp_path, "report.docx", make_pdf([["Leave Policy", *BODY]]))
    assert detect_type(path) == "pdf"
    assert parse_file(path).elements[0].text == "Leave Policy"
    assert detect_type(make_docx(tmp_path / "policy.pdf")) == "docx"


def test_extension_only_chooses_between_text_formats(tmp_path: Path) -> None:
    html = "<html><body><h1>Title</h1><p>Body text.</p></body></html>"
    assert detect_type(write(tmp_path, "page.html", html)) == "html"
    assert detect_type(write(tmp_path, "page.md", html)) == "md"
    assert detect_type(write(tmp_path, "page.txt", html)) == "txt"
    assert detect_type(write(tmp_path, "page", html)) == "html"
    assert detect_type(write(tmp_path, "data.tsv", "a\tb\n1\t2\n")) == "tsv"
    assert detect_type(make_eml(tmp_path / "message.eml")) == "eml"
    assert detect_type(write(tmp_path, "upload.bin", "x".encode("utf-16"))) == "txt"


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("empty.pdf", b"", "file is empty"),
        ("blank.txt", b"  \n\n\t \n", "no text found"),
        ("picture.txt", "png", r"unsupported file type: picture; .*\(image/png\)"),
        ("archive.zip", None, r"unsupported file type: zip archive; unpack it .*\(application/zip\)"),
    ],
)
def test_files_that_hold_no_readable_text(tmp_path: Path, name: str, data: bytes | str | None, reason: str) -> None:
    if data == "png":
        from PIL import Image

        buffer = io.BytesIO()
        Image.new("RGB", (4, 4)).save(buffer, format="PNG")
        data = buffer.getvalue()
    if data is None:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("notes.txt", "hello")
        data = buffer.getvalue()
    with pytest.raises(ParseError, match=f"^{reason}$"):
        parse_file(write(tmp_path, name, data))


def test_size_limit_is_checked_before_reading(tmp_path: Path) -> None:
    path = write(tmp_path, "big.txt", b"x" * (3 * 1024 * 1024 + 300_000))
    with pytest.raises(ParseError, match=r"^file is 3\.3 MB, over the 2 MB limit$"):
        parse_file(path, max_bytes=2 * 1024 * 1024)


def test_unexpected_library_errors_become_parse_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(*args, **kwargs):
        raise KeyError("internal")

    monkeypatch.setitem(partition.PARTITIONERS, "md", ("kb.parsing.partition", "boom", {}))
    monkeypatch.setattr(partition, "boom", explode, raising=False)
    with pytest.raises(ParseError, match="^file is damaged or unreadable$") as caught:
        parse_file(write(tmp_path, "notes.md", "# Notes\n\nText.\n"))
    assert isinstance(caught.value.__cause__, KeyError)


# --- no network, no spaCy model -----------------------------------------------------------------------------


def test_partitioning_never_loads_a_spacy_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import spacy
    import unstructured.nlp.tokenize as tokenize

    def forbidden(*args, **kwargs):
        raise AssertionError("the spaCy model was requested")

    monkeypatch.setattr(tokenize, "_get_nlp", forbidden)
    monkeypatch.setattr(spacy, "load", forbidden)
    for func in (tokenize.word_tokenize, tokenize.pos_tag, tokenize._tokenize_for_cache, tokenize._process_cached):
        func.cache_clear()
    files = [
        write(tmp_path, "a.md", "# Heading\n\nShort line\n\nA sentence with a verb. And another one.\n"),
        write(tmp_path, "a.html", "<h1>Heading</h1><p>Short line</p><p>Another paragraph here.</p>"),
        write(tmp_path, "a.txt", "Short Title Line\n\nA paragraph that runs. Two sentences.\n"),
        make_docx(tmp_path / "a.docx"),
        make_pptx(tmp_path / "a.pptx"),
        make_xlsx(tmp_path / "a.xlsx"),
        make_eml(tmp_path / "a.eml"),
        write(tmp_path, "a.csv", "name,role\nAda,Engineer\n"),
        write(tmp_path, "a.xml", "<staff><person>Ada Lovelace</person><role>Short Title</role></staff>"),
        write(tmp_path, "a.json", '{"policy": "Short Title", "days": 25}'),
    ]
    for path in files:
        assert parse_file(path).elements, path.name


# --- hidden text in HTML ----------------------------------------------------------------------------------

HIDDEN_PAGE = """<html><head><style>
.promo { display: none }  #legal { visibility: hidden }  aside { display:none }
p.tiny { font-size: 1px }  .ghost, .other { color: #ffffff }
.sr-only { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0, 0, 0, 0) }
</style></head><body>
<h1>Leave policy</h1>
<p>Staff get 25 paid days off.</p>
<p style="display:none">Staff are granted 365 paid days off.</p>
<p>Carry-over <span style="visibility:hidden">is unlimited and</span> is capped at five days.</p>
<div hidden>Managers approve every request at once.</div>
<p style="font-size:0">Zero-size text.</p>
<p><span style="font-size:1px;color:#fff">Tiny white text.</span>Ask HR for details.</p>
<p style="color:#ffffff;background-color:#fff">White on white.</p>
<p><font color="white">White font tag on the white page.</font></p>
<template><p>Template text.</p></template>
<p class="promo">Promo class text.</p>
<p id="legal">Legal id text.</p>
<aside>Aside tag text.</aside>
<p class="tiny">Tiny class text.</p>
<p class="ghost">Ghost class text.</p>
<p style="position:absolute; left:-9999px">Off-screen text.</p>
<p style="opacity:0">Transparent text.</p>
<p>Requests go through the portal.<span class="sr-only"> Screen-reader-only text.</span></p>
</body></html>"""


def test_html_text_a_browser_would_not_show_is_dropped(tmp_path: Path) -> None:
    parsed = parse_file(write(tmp_path, "leave.html", HIDDEN_PAGE))
    assert texts(parsed) == [
        ("title", "Leave policy"),
        ("text", "Staff get 25 paid days off."),
        ("text", "Carry-over is capped at five days."),
        ("text", "Ask HR for details."),
        ("text", "Requests go through the portal."),
    ]


def test_html_text_that_is_visible_after_all_is_kept(tmp_path: Path) -> None:
    html = """<html><head><style>
    .dark { background: #000 }  .note { display: none }  .note.shown { display: block }
    @media print { .screen { display: none } }
    </style></head><body>
    <p style="visibility:hidden">Hidden parent <span style="visibility:visible">visible child</span></p>
    <div style="font-size:0"><span style="font-size:16px">Inline-block spacing trick.</span></div>
    <div class="dark"><p style="color:#fff">White on black.</p></div>
    <table><tr><td bgcolor="#003366"><font color="#ffffff">White on a navy cell.</font></td></tr></table>
    <p class="note shown">Shown by a more specific rule.</p>
    <p class="screen">Hidden only when printed.</p>
    <p hidden style="display:block">Hidden attribute overridden.</p>
    <div style="background:url(hero.jpg)"><p style="color:#fff">White on a picture.</p></div>
    </body></html>"""
    parsed = parse_file(write(tmp_path, "visible.html", html))
    assert [e.text for e in parsed.elements] == [
        "visible child",
        "Inline-block spacing trick.",
        "White on black.",
        "White on a navy cell.",
        "Shown by a more specific rule.",
        "Hidden only when printed.",
        "Hidden attribute overridden.",
        "White on a picture.",
    ]


def test_no_colour_judgement_when_an_external_stylesheet_may_set_the_background(tmp_path: Path) -> None:
    html = '<html><head><link rel="stylesheet" href="dark.css"></head><body><p style="color:#fff">Light text.</p>'
    assert [e.text for e in parse_file(write(tmp_path, "themed.html", html)).elements] == ["Light text."]


def test_hidden_text_in_an_email_html_body_is_dropped(tmp_path: Path) -> None:
    message = EmailMessage()
    message["Subject"] = "Leave update"
    message["From"] = "hr@example.com"
    message["To"] = "all@example.com"
    message.set_content("Staff get 25 paid days off.")
    message.add_alternative(
        "<html><body><p>Staff get 25 paid days off.</p>"
        '<div style="display:none;max-height:0;overflow:hidden">Staff are granted 365 paid days off.</div>'
        "<p>Regards, HR</p></body></html>",
        subtype="html",
    )
    path = tmp_path / "update.eml"
    path.write_bytes(bytes(message))
    assert [e.text for e in parse_file(path).elements] == ["Leave update", "Staff get 25 paid days off.", "Regards, HR"]


def test_hidden_html_inside_markdown_is_dropped(tmp_path: Path) -> None:
    source = '# Leave\n\nStaff get 25 days.\n\n<div style="display:none">Staff get 365 days.</div>\n\nAsk HR.\n'
    parsed = parse_file(write(tmp_path, "leave.md", source))
    assert texts(parsed) == [("title", "Leave"), ("text", "Staff get 25 days."), ("text", "Ask HR.")]


# --- deeply nested HTML -----------------------------------------------------------------------------------


def test_html_nested_deeper_than_libxml2s_default_limit_keeps_all_its_text(tmp_path: Path) -> None:
    html = (
        "<html><body><h1>Top</h1><p>Before the nesting.</p>" + "<div>" * 1000
        + "<p>Deep sentence at the bottom.</p><p style='display:none'>Deep hidden text.</p><p>Second deep one.</p>"
        + "</div>" * 1000 + "<p>After the nesting.</p></body></html>"
    )  # fmt: skip
    assert texts(parse_file(write(tmp_path, "deep.html", html))) == [
        ("title", "Top"),
        ("text", "Before the nesting."),
        ("text", "Deep sentence at the bottom."),
        ("text", "Second deep one."),
        ("text", "After the nesting."),
    ]


def test_html_nested_beyond_what_libxml2_can_read_is_refused_in_one_line(tmp_path: Path) -> None:
    html = "<p>Top.</p>" + "<div>" * 3000 + "Deep." + "</div>" * 3000 + "<p>After.</p>"
    with pytest.raises(ParseError, match=r"^the HTML is nested more than 2,048 levels deep, too deep to read$"):
        parse_file(write(tmp_path, "deeper.html", html))


# --- text that libmagic takes for something else -------------------------------------------------------------

MISREAD_TEXTS = [  # first lines of records of SciFact and of the Anthropic docs set that were refused
    ("abstract.txt", b"Article\n\nIBD is characterized by uncontrolled immune responses.\n", "message/news"),
    ("legacy.txt", b"Article\n\nOur caf\xe9 opens at nine and closes at five.\n", "message/news"),
    ("onboarding.md", b"Path: the first step of onboarding is to read the handbook.\n", "message/news"),
    ("pad4.txt", b"PAD4 is essential for antibacterial innate immunity.\n", "application/vnd.hp-HPGL"),
    ("aims.txt", b"SPECIFIC AIMS Our previous studies implied a relation.\n", "application/vnd.hp-HPGL"),
    (
        "sdk.md",
        b'Typescript\n\nimport Anthropic from "@anthropic-ai/sdk";\nconst client = new Anthropic();\n',
        "application/javascript",
    ),
]


@pytest.mark.parametrize(("name", "data", "mime"), MISREAD_TEXTS, ids=[case[0] for case in MISREAD_TEXTS])
def test_text_under_a_text_extension_is_text_whatever_libmagic_says(
    tmp_path: Path, name: str, data: bytes, mime: str
) -> None:
    import magic

    assert magic.from_buffer(data, mime=True) == mime  # the misreading this case is about
    path = write(tmp_path, name, data)
    assert detect_type(path) == Path(name).suffix.lstrip(".")
    words = " ".join(element.text for element in parse_file(path).elements).split()
    assert words == decode_text(data).split()


@pytest.mark.parametrize(
    ("name", "data", "outcome"),
    [
        ("picture.md", "png", r"unsupported file type: picture; .*\(image/png\)"),
        ("archive.txt", "zip", r"unsupported file type: zip archive; .*\(application/zip\)"),
        ("noise.txt", "random", r"unsupported file type: unrecognised binary file \(application/octet-stream\)"),
        ("letter.txt", b"{\\rtf1\\ansi Hello}", r"unsupported file type: Rich Text .*\(text/rtf\)"),
        ("report.txt", "pdf", "pdf"),
    ],
)
def test_binaries_under_a_text_extension_are_still_what_they_are(
    tmp_path: Path, name: str, data: bytes | str, outcome: str
) -> None:
    made = {"png": png_bytes, "zip": zip_bytes, "random": lambda: random.Random(0).randbytes(4096),
            "pdf": lambda: make_pdf([["Leave Policy", *BODY]])}  # fmt: skip
    path = write(tmp_path, name, made[data]() if isinstance(data, str) else data)
    if outcome == "pdf":
        assert detect_type(path) == "pdf"
        return
    with pytest.raises(ParseError, match=f"^{outcome}$"):
        parse_file(path)


# --- large and unusual CSV ----------------------------------------------------------------------------------


def test_long_csv_becomes_tables_that_each_start_with_the_header(tmp_path: Path) -> None:
    rows = [f"{i},Person {i},City {i % 7}" for i in range(3000)]
    parsed = parse_file(write(tmp_path, "people.csv", "id,name,city\n" + "\n".join(rows) + "\n"))
    assert len(parsed.elements) > 1 and {e.kind for e in parsed.elements} == {"table"}
    assert all(e.text.startswith("id | name | city\n") for e in parsed.elements)
    assert all(count_words(e.text) <= TABLE_PART_WORDS for e in parsed.elements)
    body = [line for e in parsed.elements for line in e.text.split("\n")[1:]]
    assert body == [row.replace(",", " | ") for row in rows]
    chunks = chunk_document(parsed, doc_id="d", version=1, source="people.csv")
    assert len(chunks) > 1 and all(chunk.text.startswith("id | name | city\n") for chunk in chunks)


def test_a_header_too_wide_to_repeat_heads_only_the_first_part(tmp_path: Path) -> None:
    header = ",".join(f"column{n}" for n in range(80))  # 159 words as a line: more than half a part
    rows = [",".join(f"r{i}c{n}" for n in range(80)) for i in range(6)]
    parsed = parse_file(write(tmp_path, "wide.csv", header + "\n" + "\n".join(rows) + "\n"))
    lines = [line for e in parsed.elements for line in e.text.split("\n")]
    assert lines == [header.replace(",", " | "), *(row.replace(",", " | ") for row in rows)]
    assert len(parsed.elements) > 1


def test_csv_over_unstructureds_cell_limit_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # unstructured refuses more than CSV_MAX_CELLS cells (5 million by default: a 1M-row, 10-column file);
    # lowered here so that a small file crosses it.
    monkeypatch.setenv("CSV_MAX_CELLS", "100")
    rows = [f"{i},{i * 2},{i * 3}" for i in range(200)]
    parsed = parse_file(write(tmp_path, "numbers.csv", "a,b,c\n" + "\n".join(rows) + "\n"))
    assert sum(e.text.count("\n") for e in parsed.elements) == 200


def test_csv_quoting_delimiters_and_blank_cells(tmp_path: Path) -> None:
    quoted = parse_file(write(tmp_path, "q.csv", 'name,note\n"Smith, Ann","line one\nline two"\nLee,\n\n'))
    semicolons = parse_file(write(tmp_path, "s.csv", "team;city\r\nBlues;STL\r\n"))
    one_column = parse_file(write(tmp_path, "c.csv", "name\nAda\nGrace\n"))
    assert texts(quoted) == [("table", "name | note\nSmith, Ann | line one line two\nLee")]
    assert texts(semicolons) == [("table", "team | city\nBlues | STL")]
    assert texts(one_column) == [("table", "name\nAda\nGrace")]


# --- encodings ------------------------------------------------------------------------------------------------


def test_utf8_with_a_bad_byte_stays_utf8(tmp_path: Path) -> None:
    data = "The naïve approach works. Crème brûlée for all.".encode() + b" One bad \xff byte.\n"
    assert decode_text(data) == "The naïve approach works. Crème brûlée for all. One bad \ufffd byte.\n"
    parsed = parse_file(write(tmp_path, "notes.txt", data))
    assert parsed.elements[0].text.startswith("The naïve approach works. Crème brûlée")


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        ("café résumé", "cp1252"),
        ("naïve", "latin-1"),
        ("Our café serves a résumé of naïve dishes.", "cp1252"),
        ("He said “hello” – it’s fine … €5.", "cp1252"),
        ("Mädchen für Größe, Grüße aus München!", "cp1252"),
        ("Pracownicy mają prawo do płatnego urlopu. Wniosek należy złożyć w dziale kadr.", "cp1250"),
        ("Сотрудники получают ежегодный оплачиваемый отпуск продолжительностью двадцать восемь дней.", "cp1251"),
        ("员工每年享有带薪年假，具体天数根据工龄确定。请向人力资源部门申请。", "gbk"),
        ("Café rules for everyone", "utf-16-le"),
        ("Café rules for everyone", "utf-16-be"),
    ],
)
def test_text_that_clearly_is_another_encoding_is_decoded_as_it(text: str, encoding: str) -> None:
    assert decode_text(text.encode(encoding)) == text


@pytest.mark.parametrize("name", ["big.md", "big.txt"])
def test_big_text_is_read_a_block_at_a_time_with_the_same_elements(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                      name: str) -> None:
    """A 100 MB text file read at once needed more than the parse helper's 2 GB; blocks cut at paragraph
    ends (never inside a code fence) give the same elements as the whole."""
    from kb.parsing import partition

    parts = []
    for i in range(60):
        parts.append(f"# Section {i}\n\nParagraph {i} explains rule {i}. It has two sentences.")
        parts.append(f"- item {i} a\n- item {i} b")
        if i % 7 == 0:
            parts.append(f"```\ncode line {i}\n\nstill code {i}\n```")
    path = write(tmp_path, name, "\n\n".join(parts) + "\n")
    whole = parse_file(path, name)
    monkeypatch.setattr(partition, "BLOCK_CHARS", 300)
    assert len(list(partition.text_blocks(path.read_text(), name.split(".")[1], 300))) > 10
    assert parse_file(path, name) == whole


@pytest.mark.parametrize(
    "raw", ["0000320193-23-000064", "Microsoft Word - leave.docx", "untitled", "Document1", "PowerPoint Presentation",
            "report.pdf", "", "   ", "x" * 300],
)
def test_identifiers_file_names_and_placeholders_are_not_titles(raw: str) -> None:
    assert real_title(raw) is None


def test_a_real_title_is_kept_and_a_tool_prefix_dropped() -> None:
    assert real_title("Microsoft Word - Leave Policy 2024") == "Leave Policy 2024"
    assert real_title("  Apple Inc.   Form 10-Q ") == "Apple Inc. Form 10-Q"


def test_the_fallback_title_is_the_first_heading_of_page_one_else_its_first_line() -> None:
    headed = [Element("Welcome to the handbook, read on."), Element("Travel Policy", kind="title"), Element("Text.")]
    assert fallback_title(headed) == "Travel Policy"
    later = [Element("Staff Handbook\nEdition 3", page=1), Element("Leave", kind="title", page=2)]
    assert fallback_title(later) == "Staff Handbook"  # a heading on page 2 is a section, not the title
    sentence = [Element(" ".join(["word"] * 40))]
    assert fallback_title(sentence) is None


def test_a_running_header_names_the_document_without_its_page_number() -> None:
    bodies = ["Revenue rose.", "Costs fell.", "Risks remain.", "Cash grew.", "Debt paid."]
    pages = [[f"Apple Inc. | Q3 2022 Form 10-Q | {n}", body, f"{n}"] for n, body in enumerate(bodies, 1)]
    assert running_title(pages) == "Apple Inc. | Q3 2022 Form 10-Q"
    contents = [["Table of Contents", body] for body in bodies]
    assert running_title(contents) is None


def test_a_documents_name_comes_from_its_path() -> None:
    assert document_name("hr/leave_policy-2024.pdf") == "hr leave policy 2024"
    assert document_name("C:\\Users\\a\\Q3 report.docx") == "C: Users a Q3 report"


# --- long tables in every format ----------------------------------------------------------------------------

HEADER = ("Region", "Quarter", "Revenue", "Note")
TABLE_ROWS = [(f"Region {i}", f"Q{i % 4 + 1}", str(1000 + i), "" if i % 3 else "restated") for i in range(150)]


def make_table_file(tmp_path: Path, kind: str) -> Path:
    """A file of `kind` holding one table: HEADER, then TABLE_ROWS (every third Note filled, the rest empty)."""
    rows = [HEADER, *TABLE_ROWS]
    path = tmp_path / f"sales.{kind}"
    if kind == "csv":
        path.write_text("\n".join(",".join(row) for row in rows) + "\n", encoding="utf-8")
    elif kind == "html":
        cells = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
        path.write_text(f"<html><body><h1>Sales</h1><table>{cells}</table></body></html>", encoding="utf-8")
    elif kind == "xlsx":
        import openpyxl

        workbook = openpyxl.Workbook()
        for row in rows:
            workbook.active.append([cell or None for cell in row])
        workbook.save(str(path))
    elif kind == "docx":
        import docx

        document = docx.Document()
        document.add_paragraph("Sales by region.")
        table = document.add_table(rows=len(rows), cols=len(HEADER))
        for row, values in zip(table.rows, rows):
            for cell, value in zip(row.cells, values):
                cell.text = value
        document.save(str(path))
    else:
        import pptx
        from pptx.util import Inches

        deck = pptx.Presentation()
        slide = deck.slides.add_slide(deck.slide_layouts[5])
        slide.shapes.title.text = "Sales"
        shape = slide.shapes.add_table(len(rows), len(HEADER), Inches(0.5), Inches(1.5), Inches(9), Inches(5))
        for r, values in enumerate(rows):
            for c, value in enumerate(values):
                shape.table.cell(r, c).text = value
        deck.save(str(path))
    return path


@pytest.mark.parametrize("kind", ["csv", "xlsx", "docx", "html", "pptx"])
def test_every_chunk_of_a_long_table_starts_with_its_header_and_keeps_its_cells(tmp_path: Path, kind: str) -> None:
    parsed = parse_file(make_table_file(tmp_path, kind))
    tables = [e for e in parsed.elements if e.kind == "table"]
    assert len(tables) > 1  # a long table comes in parts ...
    assert all(e.table_rows()[0] == HEADER and e.header for e in tables)
    assert all(e.text.startswith("Region | Quarter | Revenue | Note\n") for e in tables)
    assert all(count_words(e.text) <= TABLE_PART_WORDS for e in tables)  # ... that each fit in a chunk
    chunks = [c for c in chunk_document(parsed, doc_id="d", version=1, source=f"sales.{kind}") if c.tables]
    assert len(chunks) > 2
    body: list[tuple[str, ...]] = []
    for c in chunks:
        assert c.text[c.tables[0].start :].startswith("Region | Quarter | Revenue | Note\n")
        for span in c.tables:
            assert span.header and span.rows[0] == HEADER
            lines = c.text[span.start : span.end].split("\n")
            assert lines == [" | ".join(cell for cell in row if cell) for row in span.rows]  # one row a line
            body += span.rows[1:]
    assert body == TABLE_ROWS  # every row once, whole, with its empty cells kept so the columns line up
    later = chunks[-1]  # a chunk of the table's last rows still says what each column is
    assert later.tables[0].start == 0 and later.text.startswith("Region | Quarter | Revenue | Note\nRegion ")
