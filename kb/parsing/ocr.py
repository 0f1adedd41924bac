"""Text of scanned PDF pages: render each page with pypdfium2 and read it with the `tesseract` command.

Scans have no text layer, so `kb.parsing.pdf` finds nothing in them. When the tesseract binary is installed
(`make test` installs Debian's `tesseract-ocr`), its command line is enough: no Python wrapper, no new
dependency. It is optional: without it, scans are reported as "OCR is not enabled". Hostile pages are bounded:
the rendered image is capped in size and every tesseract run has a time limit.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import pypdfium2 as pdfium

from kb.parsing.pdf import PDFIUM_LOCK
from kb.records import ParseError

RENDER_SCALE = 2.0  # 144 dpi: tesseract reads body text well from about 150 dpi up
MAX_SIDE_PX = 5000  # a huge page is rendered smaller rather than as a multi-gigabyte bitmap
PAGE_TIMEOUT_S = 60.0  # one page's tesseract run; a normal page takes a second or two


def ocr_available() -> bool:
    """Whether the tesseract command is installed."""
    return shutil.which("tesseract") is not None


def ocr_pdf_pages(path: Path, pages: Sequence[int]) -> list[str]:
    """The OCR text of the given 0-based pages, in the same order. A page pdfium cannot render gives ""."""
    with tempfile.TemporaryDirectory(prefix="kb-ocr-") as workdir:
        images = _render_pages(path, pages, Path(workdir))
        return [_tesseract(image, dpi, number) if image else "" for image, dpi, number in images]


def _render_pages(path: Path, pages: Sequence[int], workdir: Path) -> list[tuple[Path | None, int, int]]:
    """Each page as a PNG in `workdir` (None when it cannot be rendered), its dpi and its 1-based number."""
    rendered: list[tuple[Path | None, int, int]] = []
    with PDFIUM_LOCK:
        document = pdfium.PdfDocument(str(path))
        try:
            for index in pages:
                image: Path | None = workdir / f"page-{index + 1}.png"
                scale = RENDER_SCALE
                try:
                    page = document[index]
                    try:
                        scale = min(RENDER_SCALE, MAX_SIDE_PX / max(*page.get_size(), 1.0))
                        page.render(scale=scale, grayscale=True).to_pil().save(image)
                    finally:
                        page.close()
                except pdfium.PdfiumError:
                    image = None
                rendered.append((image, max(1, round(72 * scale)), index + 1))
        finally:
            document.close()
    return rendered


def _tesseract(image: Path, dpi: int, page: int) -> str:
    """The text tesseract reads in one page image."""
    try:
        result = subprocess.run(
            ["tesseract", str(image), "stdout", "--dpi", str(dpi)],
            capture_output=True,
            timeout=PAGE_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ParseError(f"OCR took longer than {PAGE_TIMEOUT_S:g} s on page {page}") from exc
    if result.returncode != 0:
        raise ParseError(f"OCR failed on page {page}")
    return result.stdout.decode("utf-8", errors="replace")
