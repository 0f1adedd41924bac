"""Drawing a PDF page with its passage highlighted (`kb.rendering.render_page`, in a child process with a time
limit and a memory cap): time per page and peak memory on a large PDF, against drawing in-process.

    .venv/bin/python bench/render_page.py [--pdf FILE] [--pages 30] [--seed 3]

Default: the 619-page PDF of unstructured's example documents. Each sampled page is drawn with its first
line's words highlighted, once through `render_page` (what `kb show --png` and the app call: child process,
PNG out) and once by `kb.rendering.draw` in this process (the baseline: no process start, no limits).
Peak memory: the largest child's max RSS (getrusage RUSAGE_CHILDREN) and this process's own growth.
"""

from __future__ import annotations

import argparse
import random
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED, save  # noqa: E402
from qa_common import pdf_pages  # noqa: E402

DEFAULT_PDF = SHARED / "ingestion" / "unstructured" / "example-docs" / "pdf" / "DA-619p.pdf"


def main() -> None:
    from kb.rendering import draw, render_page

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pdf", type=Path, default=DEFAULT_PDF)
    parser.add_argument("--pages", type=int, default=30)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    texts = pdf_pages(args.pdf)
    pages = sorted(random.Random(args.seed).sample(range(1, len(texts) + 1), min(args.pages, len(texts))))
    phrases = {p: [next((line for line in texts[p - 1].splitlines() if len(line.split()) >= 3), "")] for p in pages}
    child_ms, inproc_ms, boxes, sizes = [], [], 0, []
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for page in pages:
        started = time.perf_counter()
        drawn = render_page(str(args.pdf), page, phrases[page])
        child_ms.append(1000 * (time.perf_counter() - started))
        boxes += bool(drawn.boxes)
        sizes.append(len(drawn.png))
        started = time.perf_counter()
        draw(str(args.pdf), page, phrases[page])
        inproc_ms.append(1000 * (time.perf_counter() - started))
    child_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    own_growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024

    def pct(values: list[float], q: float) -> float:
        return round(statistics.quantiles(values, n=100)[int(q) - 1], 1) if len(values) > 1 else round(values[0], 1)

    result = {
        "pdf": str(args.pdf), "pdf_pages": len(texts), "pages_drawn": len(pages),
        "render_page_ms": {"p50": pct(child_ms, 50), "p95": pct(child_ms, 95), "max": round(max(child_ms), 1)},
        "in_process_ms": {"p50": pct(inproc_ms, 50), "p95": pct(inproc_ms, 95), "max": round(max(inproc_ms), 1)},
        "child_peak_rss_mb": round(child_peak, 1), "in_process_rss_growth_mb": round(own_growth, 1),
        "pages_with_a_highlight": boxes, "png_kb_mean": round(statistics.mean(sizes) / 1024, 1),
    }
    for key, value in result.items():
        print(f"{key}: {value}")
    print(f"wrote {save('render_page', result)}")


if __name__ == "__main__":
    main()
