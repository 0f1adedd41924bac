"""A PDF page as an image with a passage's words highlighted where they stand, for auditing a citation.

pdfium draws the page and gives the boxes of the characters a search finds; the boxes are painted over the
image in translucent yellow. A hostile or huge PDF must not stall the app, so `render_page` runs the drawing
in a child process (`python -m kb.rendering`) with a time limit and a memory cap, and the image's size is
capped in pixels whatever the page's size.
"""

from __future__ import annotations

import io
import json
import resource
import subprocess
import sys
from dataclasses import dataclass

from kb.errors import KbError

MAX_PIXELS = 2_500_000  # about 1300 x 1900: an A4 page at ~160 dpi
RENDER_TIMEOUT_S = 20.0
RENDER_MEMORY_MB = 1024
MAX_PHRASES = 20  # highlight at most this many phrases (sentences or words) per page
HIGHLIGHT = (250, 204, 21, 110)  # RGBA: translucent yellow


class RenderError(KbError):
    """The page could not be drawn: the reason is one line a person can read."""


@dataclass(frozen=True)
class RenderedPage:
    """A drawn page: PNG bytes, its size in pixels, and the highlight boxes (left, top, right, bottom) in pixels."""

    png: bytes
    width: int
    height: int
    page: int  # 1-based
    pages: int  # the document's page count
    boxes: tuple[tuple[int, int, int, int], ...]


def highlighted_band(page: RenderedPage, margin: float = 0.12) -> bytes:
    """The part of the page around its highlights (plus `margin` of the page's height above and below, and
    of its width on each side), as PNG: what a narrow card shows so the passage is legible; the whole page
    when nothing is lit."""
    from PIL import Image

    if not page.boxes:
        return page.png
    pad = round(margin * page.height)
    top = max(0, min(box[1] for box in page.boxes) - pad)
    bottom = min(page.height, max(box[3] for box in page.boxes) + pad)
    out = io.BytesIO()
    side = round(margin * page.width / 2)
    left = max(0, min(box[0] for box in page.boxes) - side)
    right = min(page.width, max(box[2] for box in page.boxes) + side)
    Image.open(io.BytesIO(page.png)).crop((left, top, right, bottom)).save(out, format="PNG")
    return out.getvalue()


def render_page(path: str, page: int, phrases: list[str], timeout_s: float = RENDER_TIMEOUT_S) -> RenderedPage:
    """Page `page` (1-based) of the PDF at `path`, with every occurrence of `phrases` highlighted.
    Raises RenderError when the page does not exist or the PDF cannot be drawn in time."""
    request = json.dumps({"path": path, "page": page, "phrases": phrases[:MAX_PHRASES]})
    try:
        done = subprocess.run(
            [sys.executable, "-m", "kb.rendering", str(RENDER_MEMORY_MB)], input=request.encode(),
            capture_output=True, timeout=timeout_s,
        )
    except subprocess.TimeoutExpired as exc:
        raise RenderError(f"the page could not be drawn within {timeout_s:g} s") from exc
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip().splitlines()
        said = reason[-1] if reason and reason[-1].startswith("kb: ") else "kb: the page could not be drawn"
        raise RenderError(said.removeprefix("kb: "))
    header, _, png = done.stdout.partition(b"\n")
    info = json.loads(header)
    return RenderedPage(png, info["width"], info["height"], page, info["pages"],
                        tuple((b[0], b[1], b[2], b[3]) for b in info["boxes"]))


def draw(path: str, page: int, phrases: list[str]) -> tuple[bytes, dict[str, object]]:
    """In the child process: the PNG and what is known about it (size, page count, boxes)."""
    import pypdfium2 as pdfium
    from PIL import Image, ImageDraw

    try:
        document = pdfium.PdfDocument(path)
    except pdfium.PdfiumError as exc:
        raise RenderError("kb: the file is damaged, encrypted or not a PDF") from exc
    try:
        if not 1 <= page <= len(document):
            raise RenderError(f"kb: the document has {len(document)} pages, not page {page}")
        pdf_page = document[page - 1]
        width_pt, height_pt = pdf_page.get_size()
        scale = min(2.0, (MAX_PIXELS / max(width_pt * height_pt, 1.0)) ** 0.5)
        image = pdf_page.render(scale=scale).to_pil().convert("RGBA")
        boxes = _boxes(pdf_page, phrases, scale, height_pt)
        overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
        pen = ImageDraw.Draw(overlay)
        for box in boxes:
            pen.rectangle(box, fill=HIGHLIGHT)
        out = io.BytesIO()
        Image.alpha_composite(image, overlay).convert("RGB").save(out, format="PNG", optimize=True)
        return out.getvalue(), {"width": image.width, "height": image.height, "pages": len(document), "boxes": boxes}
    finally:
        document.close()


def _boxes(pdf_page: object, phrases: list[str], scale: float, height_pt: float) -> list[list[int]]:
    """Pixel boxes of every line-piece where a phrase occurs on the page (pdfium's text search, any case)."""
    textpage = pdf_page.get_textpage()  # type: ignore[attr-defined]
    boxes: list[list[int]] = []
    try:
        for phrase in phrases:
            phrase = " ".join(phrase.split())
            if not phrase:
                continue
            searcher = textpage.search(phrase, match_case=False, match_whole_word=False)
            try:
                while (found := searcher.get_next()) is not None:
                    start, count = found
                    for i in range(textpage.count_rects(start, count)):
                        left, bottom, right, top = textpage.get_rect(i)
                        boxes.append([round(left * scale), round((height_pt - top) * scale),
                                      round(right * scale), round((height_pt - bottom) * scale)])
            finally:
                searcher.close()
    finally:
        textpage.close()
    return [list(box) for box in dict.fromkeys(tuple(box) for box in boxes)]  # phrases may find the same text


def main() -> None:
    limit = int(sys.argv[1]) * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    request = json.loads(sys.stdin.buffer.read())
    try:
        png, info = draw(request["path"], int(request["page"]), list(request["phrases"]))
    except RenderError as exc:
        print(str(exc), file=sys.stderr)
        raise SystemExit(2) from None
    except MemoryError:
        print(f"kb: the page could not be drawn within {sys.argv[1]} MB of memory", file=sys.stderr)
        raise SystemExit(2) from None
    sys.stdout.buffer.write(json.dumps(info).encode() + b"\n" + png)


if __name__ == "__main__":
    main()
