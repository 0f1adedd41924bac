"""A document's own date (kb.parsing.dates): read from the file's metadata, carried by every chunk, and
used to rank "the latest report" questions (kb.retrieval.diversified)."""

import zipfile
from pathlib import Path

from test_parsing import make_docx, make_pdf, write

from kb.index.base import chunk_from_payload, chunk_to_payload
from kb.parsing import parse_file
from kb.parsing.dates import office_date, pdf_date
from kb.chunking import chunk_document
from kb.records import Chunk
from kb.retrieval import asks_for_latest, diversified, newness


def test_pdf_dates_in_their_usual_forms():
    assert pdf_date("D:20231121163956-05'00'", None) == "2023-11-21"
    assert pdf_date(None, "D:2022") == "2022-01-01"
    assert pdf_date("D:20231399", "D:20220729060321-04'00'") == "2022-07-29"  # an impossible date is skipped
    assert pdf_date("garbage", "") is None and pdf_date("D:18990101", None) is None


def test_a_pdf_and_its_chunks_carry_the_date_it_records(tmp_path: Path):
    path = write(tmp_path, "report.pdf", make_pdf([["Quarterly report", "Revenue grew in every region."]],
                                                  modified="D:20230804060223-04'00'"))
    parsed = parse_file(path)
    assert parsed.date == "2023-08-04"
    [chunk] = chunk_document(parsed, doc_id="r", version=1, source="report.pdf")
    assert chunk.date == "2023-08-04"
    assert chunk_from_payload(chunk_to_payload(chunk)).date == "2023-08-04"
    old_payload = {k: v for k, v in chunk_to_payload(chunk).items() if k != "date"}  # indexed before dates
    assert chunk_from_payload(old_payload).date is None
    assert parse_file(write(tmp_path, "undated.pdf", make_pdf([["No date here at all."]]))).date is None


def test_an_office_file_carries_its_core_properties_date(tmp_path: Path):
    import datetime as dt

    import docx

    path = make_docx(tmp_path / "policy.docx")
    document = docx.Document(str(path))
    document.core_properties.modified = dt.datetime(2024, 3, 5, 10, 0)
    document.save(str(path))
    assert office_date(path) == "2024-03-05" and parse_file(path).date == "2024-03-05"


def test_a_hostile_or_missing_core_xml_gives_no_date(tmp_path: Path):
    huge = tmp_path / "huge.docx"
    with zipfile.ZipFile(huge, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("docProps/core.xml", "<dcterms:modified>2024-01-01" + " " * 200_000)
    assert office_date(huge) is None
    bare = tmp_path / "bare.docx"
    with zipfile.ZipFile(bare, "w") as archive:
        archive.writestr("word/document.xml", "<w:document/>")
    assert office_date(bare) is None and office_date(write(tmp_path, "not.docx", b"not a zip")) is None


def dated(doc_id: str, date: str | None, seq: int = 0) -> Chunk:
    return Chunk(f"{doc_id}:1:{seq}", doc_id, 1, seq, f"{doc_id}.pdf", "text", date=date)


def test_asking_for_the_latest_lifts_the_newest_document():
    hits = [(dated("q1", "2023-02-03"), 1.0), (dated("q2", "2023-05-05"), 0.97), (dated("q3", "2023-08-04"), 0.95),
            (dated("undated", None), 0.96)]
    assert newness([c for c, _ in hits]) == {"q1": 0.0, "q2": 0.5, "q3": 1.0}
    plain = [c.doc_id for c, _ in diversified(hits, 4, 0.3, 0.5)]
    latest = [c.doc_id for c, _ in diversified(hits, 4, 0.3, 0.5, recency=0.3)]
    assert plain[0] == "q1" and latest[0] == "q3"
    assert asks_for_latest("What was the gross margin in the most recent 10-Q?")
    assert asks_for_latest("the latest handbook") and not asks_for_latest("What was the revenue in Q1 2023?")


def test_one_date_or_none_changes_nothing():
    hits = [(dated("a", "2023-01-01"), 1.0), (dated("b", None), 0.9)]
    assert newness([c for c, _ in hits]) == {}
    assert [c.doc_id for c, _ in diversified(hits, 2, 0.3, 0.5, recency=0.3)] == ["a", "b"]


def test_the_date_crosses_the_parse_helper(tmp_path: Path):
    from kb.parsing import ParseSandbox

    path = write(tmp_path, "report.pdf", make_pdf([["Quarterly report text."]], modified="D:20230526162232-04'00'"))
    sandbox = ParseSandbox(timeout_s=60)
    try:
        assert sandbox.parse(path).date == "2023-05-26"
    finally:
        sandbox.close()
