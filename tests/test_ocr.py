"""OCR of scanned PDFs: page images without a text layer, built on the fly with Pillow."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

from kb.parsing import ocr
from kb.parsing import parse_file
from kb.records import ParseError

needs_tesseract = pytest.mark.skipif(
    not ocr.ocr_available(), reason="tesseract is not installed (`make test` installs tesseract-ocr with apt-get)"
)


def make_scan(path: Path, pages: list[list[str]]) -> Path:
    """A PDF of page images (letter size at 100 dpi) with the given lines drawn in large type: no text layer."""
    font = ImageFont.load_default(size=48)
    images = []
    for lines in pages:
        image = Image.new("L", (850, 1100), color=255)
        draw = ImageDraw.Draw(image)
        for row, line in enumerate(lines):
            draw.text((60, 80 + row * 80), line, font=font, fill=0)
        images.append(image)
    images[0].save(path, "PDF", resolution=100.0, save_all=True, append_images=images[1:])
    return path


@needs_tesseract
def test_scanned_pdf_is_read_with_ocr(tmp_path: Path) -> None:
    scan = make_scan(tmp_path / "scan.pdf", [["Parental leave policy", "Sixteen weeks paid."], ["Travel expenses"]])
    parsed = parse_file(scan)
    text_by_page = {page: " ".join(e.text for e in parsed.elements if e.page == page) for page in (1, 2)}
    assert parsed.pages == 2
    assert {element.page for element in parsed.elements} == {1, 2}
    assert "Parental leave policy" in text_by_page[1]
    assert "Sixteen weeks paid" in text_by_page[1]
    assert "Travel expenses" in text_by_page[2]


@needs_tesseract
def test_blank_scan_reports_that_ocr_found_nothing(tmp_path: Path) -> None:
    with pytest.raises(ParseError, match=r"^no text found \(scanned image; OCR found no text\)$"):
        parse_file(make_scan(tmp_path / "blank.pdf", [[], []]))


def test_scan_without_ocr_says_ocr_is_not_enabled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ocr, "ocr_available", lambda: False)
    with pytest.raises(ParseError, match=r"^no text found \(scanned image; OCR is not enabled\)$"):
        parse_file(make_scan(tmp_path / "scan.pdf", [["Parental leave policy"]]))
