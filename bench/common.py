"""What the benchmark scripts share: synthetic chunks from the handbooks, timing, memory, tables, results."""

from __future__ import annotations

import json
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
# ../shared/data beside the checkout; KB_BENCH_SHARED points elsewhere (a git worktree outside the projects folder)
SHARED = Path(os.environ.get("KB_BENCH_SHARED") or BENCH.parent.parent / "shared" / "data")
HANDBOOKS = SHARED / "enterprise_kb"
MINILM = BENCH / "models" / "all-MiniLM-L6-v2"  # made by bench/export_minilm.py
MINILM_NAME = "sentence-transformers/all-MiniLM-L6-v2"


def handbook_paragraphs(min_words: int = 25) -> list[str]:
    """Prose paragraphs of the two handbooks (front matter, code and tables left out), in a fixed order."""
    paragraphs = []
    for path in sorted(HANDBOOKS.rglob("*.md")):
        text = path.read_text(encoding="utf-8", errors="replace")
        text = re.sub(r"\A---.*?\n---", "", text, flags=re.DOTALL)
        text = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
        for block in re.split(r"\n\s*\n", text):
            if block.lstrip().startswith(("|", "<", "{%", "#")):
                continue
            words = block.split()
            if len(words) >= min_words:
                paragraphs.append(" ".join(words))
    return paragraphs


def synthetic_passages(count: int, paragraphs: list[str], seed: int = 7) -> list[tuple[str, list[int]]]:
    """`count` passages of roughly 150-300 words: two or three handbook paragraphs each, so no two repeat,
    with the positions of the paragraphs they were made of."""
    rng = random.Random(seed)
    passages = []
    for _ in range(count):
        parts = rng.sample(range(len(paragraphs)), rng.choice((2, 3)))
        passages.append((" ".join(paragraphs[i] for i in parts)[:2000], parts))
    return passages


def handbook_queries(paragraphs: list[str], count: int = 200, seed: int = 11) -> list[str]:
    """Questions-like queries: four to eight consecutive words from random paragraphs."""
    rng = random.Random(seed)
    queries = []
    while len(queries) < count:
        words = rng.choice(paragraphs).split()
        size = rng.randint(4, 8)
        start = rng.randrange(0, max(1, len(words) - size))
        queries.append(" ".join(words[start : start + size]))
    return queries


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)
    cuts = statistics.quantiles(ordered, n=100, method="inclusive")
    return {"p50": round(cuts[49], 2), "p95": round(cuts[94], 2)}


def timed(function, *args) -> tuple[Any, float]:
    started = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - started


def rss_mb() -> float:
    return round(psutil.Process().memory_info().rss / 2**20, 1)


def rss_split_mb() -> dict[str, float]:
    """Resident memory split into anonymous (heap: what the process needs) and file-backed pages
    (memory-mapped index files the kernel can drop and read again)."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("RssAnon", "RssFile", "RssShmem"):
            fields[key] = round(int(value.split()[0]) / 1024, 1)
    return {"rss_anon_mb": fields.get("RssAnon", 0.0), "rss_file_mb": fields.get("RssFile", 0.0)}


def peak_rss_mb() -> float:
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        model = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        model = cpu
    return {
        "cpu": model, "cores": psutil.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_average": [round(x, 2) for x in psutil.getloadavg()],
    }


def run_json(command: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run a worker process that prints one JSON object as its last line of stdout."""
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:4])} ... failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [["" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(value.rjust(width) for value, width in zip(row, widths)) for row in cells]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def save(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **payload}, indent=2, ensure_ascii=False))
    return path


def ratio(a: float | None, b: float | None) -> str | None:
    if not a or not b:
        return None
    return f"{a / b:.1f}x"


PYTHON = sys.executable
