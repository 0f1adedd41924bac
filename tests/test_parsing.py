"""Parsing: every supported format from fixtures built on the fly, and every way a user's file can fail."""

from __future__ import annotations

import io
import random
import zipfile
from email.message import EmailMessage
from pathlib import Path

import pytest

from kb import parsing
from kb.parsing import detect_type, parse_file
from kb.records import ParseError

BODY = (  # a paragraph as a PDF lays it out: full lines, then a short last one
    "Employees accrue paid leave every month and may carry unused days into the next calendar year",
    "provided that the total balance never exceeds forty days at the end of any quarter of the year",
    "and that their manager has approved it.",
)


def write(tmp_path: Path, name: str, data: bytes | str) -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def make_pdf(pages: list[list[str]], title: str | None = None) -> bytes:
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
    if title:
        objects.append(f"<< /Title {literal(title)} >>")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode("cp1252")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    info = f" /Info {len(objects)} 0 R" if title else ""
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
    monkeypatch.setattr(parsing, "MAX_UNPACKED_BYTES", 1000)
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

    monkeypatch.setitem(parsing.PARTITIONERS, "md", ("kb.parsing", "boom", {}))
    monkeypatch.setattr(parsing, "boom", explode, raising=False)
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
