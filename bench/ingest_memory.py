"""Memory of `kb ingest` on one big text file: the code before streaming against the streamed pipeline, in one run.

    .venv/bin/python bench/ingest_memory.py [--sizes 10,100] [--latency] [--baseline-rev 8eb3336]

Files: plain text of the given sizes (MB = 10^6 bytes, under KB_MAX_FILE_MB's 100 MiB), prose paragraphs
of the Sourcegraph handbook's Markdown (links, emphasis and code marks removed) shuffled with a seed and
repeated until the size is reached; written once under --work and reused.

Each run is `kb ingest FILE` in a new KB_DATA_DIR, as a subprocess whose PYTHONPATH is the code under
test (the parsing helper and the optimizer child inherit it):
  old  `git archive` of --baseline-rev (default 8eb3336, the commit before streaming): the helper sends one
       pickled ParsedFile; chunk_document, encode and replace_document take the whole file at once.
  new  this checkout: JobRunner.ingest streams (parse_stream -> write_version in batches of 256 chunks ->
       commit -> delete_other_versions -> release_memory()), and the parse helper reads big text a block
       at a time (kb.parsing.partition.text_blocks).
Reported: the main process's peak RSS (VmHWM from /proc at exit, exact) and, polled every 0.1 s, the peaks
of its two parts: heap (anonymous: what the process itself holds) and file-backed pages (the embedded
index's memory-mapped files, which the kernel can drop and read again); its RSS after the job (at exit)
and after a malloc_trim(0) then (old: what trimming alone would give; new: before and after the wiring's
own release_memory), the parsing helper's and other children's peak RSS (psutil, polled every 0.1 s),
wall time and chunks. KB_PARSE_TIMEOUT is raised to 1800 s for both. The old code runs with
KB_PARSE_MEMORY_MB=--parse-memory-mb (default 8192): it partitions 100 MB of prose at once, which needs
more than the default 2 GB ("file is too large to read into memory"); the new code runs with
--new-parse-memory-mb (default 2048, the product's default).

--latency: also, for the largest size, old and new in an app-like process (one KnowledgeBase; this thread
works the queue while another searches every 0.5 s, as chat does during an upload): search latency.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED, machine, save, table  # noqa: E402

import psutil  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SOURCE = SHARED / "enterprise_kb" / "sourcegraph-handbook"
QUERIES = ["how do I request time off", "code review guidelines", "incident response on call",
           "expense reimbursement policy", "hiring process interview"]  # fmt: skip


# ---- the text files -----------------------------------------------------------------------------


def prose_paragraphs(root: Path, min_words: int = 20) -> list[str]:
    """Prose paragraphs of the Markdown under `root` as plain text: no front matter, code, tables, HTML or
    headings; links keep their text, emphasis and code marks go."""
    paragraphs = []
    for path in sorted(root.rglob("*.md")):
        text = path.read_text(encoding="utf-8", errors="replace")
        text = re.sub(r"\A---.*?\n---", "", text, flags=re.DOTALL)
        text = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
        for block in re.split(r"\n\s*\n", text):
            if block.lstrip().startswith(("|", "<", "{%", "#", ">", "-", "*", "1.")):
                continue
            block = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", block)  # [text](url) -> text
            block = re.sub(r"[*_`]{1,3}", "", block)
            words = block.split()
            if len(words) >= min_words:
                paragraphs.append(" ".join(words))
    return paragraphs


def make_text_file(path: Path, size: int, paragraphs: list[str], seed: int) -> None:
    """`size` bytes of paragraphs separated by blank lines, shuffled anew for every pass over them."""
    rng = random.Random(seed)
    written = 0
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as out:
        while written < size:
            order = paragraphs[:]
            rng.shuffle(order)
            for paragraph in order:
                piece = (paragraph + "\n\n").encode("utf-8")
                if written + len(piece) > size:
                    break
                out.write(paragraph + "\n\n")
                written += len(piece)
            else:
                continue
            break
    tmp.replace(path)


# ---- inside the subprocess --------------------------------------------------------------------------


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _mb(kb: int) -> float:
    return round(kb / 1024, 1)


def _trim() -> None:
    import ctypes

    ctypes.CDLL("libc.so.6").malloc_trim(0)


def _install(variant: str, record: dict[str, Any]) -> None:
    """In the new variant, put the streamed ingest in place and watch its release_memory."""
    if variant != "new":
        return
    import kb.jobs
    import kb.pipeline

    release = kb.pipeline.release_memory

    def watched() -> bool:
        record["rss_before_release_mb"] = _mb(_status_kb("VmRSS"))
        released = release()
        record["rss_after_release_mb"] = _mb(_status_kb("VmRSS"))
        return released

    kb.pipeline.release_memory = watched


def child_cli(variant: str, file: str, result: str) -> None:
    """`kb ingest FILE` in this process; at exit, the memory figures go to `result` as JSON."""
    import atexit

    record: dict[str, Any] = {"kb_module": None}

    def at_exit() -> None:
        record["peak_rss_mb"] = _mb(_status_kb("VmHWM"))
        record["rss_at_exit_mb"] = _mb(_status_kb("VmRSS"))
        _trim()
        record["rss_after_trim_mb"] = _mb(_status_kb("VmRSS"))
        Path(result).write_text(json.dumps(record))

    atexit.register(at_exit)
    _install(variant, record)
    import kb
    from kb.cli import cli

    record["kb_module"] = kb.__file__
    cli.main(["ingest", file], prog_name="kb")


def child_latency(variant: str, file: str, warmup: str, result: str) -> None:
    """One KnowledgeBase: this thread ingests `file` while another searches every 0.5 s."""
    record: dict[str, Any] = {}
    _install(variant, record)
    from kb.auth import LOCAL_ADMIN
    from kb.config import load_settings
    from kb.service import KnowledgeBase

    kb = KnowledgeBase(load_settings())
    try:
        assert kb.take_queue()
        kb.submit_paths([Path(warmup)])
        kb.work_queue()
        latencies: list[float] = []
        stop = threading.Event()

        def chat() -> None:
            n = 0
            while not stop.is_set():
                started = time.perf_counter()
                kb.search(QUERIES[n % len(QUERIES)], k=5, actor=LOCAL_ADMIN)
                latencies.append(time.perf_counter() - started)
                n += 1
                stop.wait(max(0.0, 0.5 - (time.perf_counter() - started)))

        searcher = threading.Thread(target=chat, daemon=True)
        before = []
        for n in range(10):  # idle latency first
            started = time.perf_counter()
            kb.search(QUERIES[n % len(QUERIES)], k=5, actor=LOCAL_ADMIN)
            before.append(time.perf_counter() - started)
        searcher.start()
        started = time.perf_counter()
        kb.submit_paths([Path(file)])
        kb.work_queue(on_done=lambda job: record.update(outcome=f"{job.outcome} {job.message}"))
        record["ingest_s"] = round(time.perf_counter() - started, 1)
        stop.set()
        searcher.join()
        record["app_rss_after_mb"] = _mb(_status_kb("VmRSS"))  # what the app keeps, its index still open
        _trim()
        record["app_rss_after_trim_mb"] = _mb(_status_kb("VmRSS"))
        record["app_peak_rss_mb"] = _mb(_status_kb("VmHWM"))
        record["idle_ms"] = [round(x * 1000, 1) for x in before]
        record["during_ms"] = [round(x * 1000, 1) for x in latencies]
    finally:
        kb.close()
    Path(result).write_text(json.dumps(record))


# ---- the parent ---------------------------------------------------------------------------------------


def run(
    variant: str, tree: Path, args: list[str], data_dir: Path, timeout_s: float, parse_memory_mb: int,
) -> dict[str, Any]:
    """A child process (`--child ...`) on the code in `tree`, its children's peak RSS polled meanwhile."""
    result = data_dir.parent / f"{data_dir.name}.json"
    env = {
        **os.environ, "PYTHONPATH": str(tree), "KB_DATA_DIR": str(data_dir), "KB_PARSE_TIMEOUT": "1800",
        "KB_PARSE_MEMORY_MB": str(parse_memory_mb), "PYTHONDONTWRITEBYTECODE": "1",
    }
    command = [sys.executable, __file__, "--child", *args, variant, str(result)]
    started = time.perf_counter()
    # cwd: `python -m kb.parsing.helper` puts the working directory first on sys.path, ahead of PYTHONPATH
    child = subprocess.Popen(
        command, env=env, cwd=data_dir.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    peaks: dict[str, float] = {}
    process = psutil.Process(child.pid)
    outputs: list[str] = []
    reader = threading.Thread(target=lambda: outputs.append(child.stdout.read()), daemon=True)
    errors: list[str] = []
    err_reader = threading.Thread(target=lambda: errors.append(child.stderr.read()), daemon=True)
    reader.start()
    err_reader.start()
    while child.poll() is None:
        try:  # the main process's own heap: resident minus file-backed pages (the index's memory-mapped files)
            info = process.memory_info()
            peaks["main_anon"] = max(peaks.get("main_anon", 0.0), (info.rss - info.shared) / 2**20)
            peaks["main_file"] = max(peaks.get("main_file", 0.0), info.shared / 2**20)
        except psutil.Error:
            pass
        try:
            for sub in process.children(recursive=True):
                try:
                    line = " ".join(sub.cmdline())
                    helper = "kb.parsing.helper" in line or "kb.sandbox" in line  # its module now and at the baseline
                    role = "helper" if helper else "optimizer" if "kb.index" in line else "other"
                    peaks[role] = max(peaks.get(role, 0.0), sub.memory_info().rss / 2**20)
                except psutil.Error:
                    pass
        except psutil.Error:
            pass
        if time.perf_counter() - started > timeout_s:
            child.kill()
        time.sleep(0.1)
    reader.join()
    err_reader.join()
    wall = time.perf_counter() - started
    if not result.is_file():
        raise RuntimeError(f"{variant} {' '.join(args)} failed (exit {child.returncode}):\n{''.join(errors)[-3000:]}")
    record = json.loads(result.read_text())
    if child.returncode != 0:
        print("".join(errors)[-2000:], file=sys.stderr)
    record.update(
        wall_s=round(wall, 1), exit=child.returncode, stdout="".join(outputs).strip(),
        **{f"{role}_peak_rss_mb": round(mb, 1) for role, mb in peaks.items()},
    )
    chunks = re.search(r": (\d+) chunks", record["stdout"])
    record["chunks"] = int(chunks.group(1)) if chunks else None
    return record


def baseline_tree(rev: str, where: Path) -> Path:
    """The code of `rev` (only kb/ is needed), unpacked with git archive: no worktree is registered."""
    if not (where / "kb" / "__init__.py").is_file():
        where.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, "kb"], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(where)], input=archive.stdout, check=True)
    return where


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10,100", help="file sizes in MB (10^6 bytes), comma-separated")
    parser.add_argument("--source", type=Path, default=SOURCE, help="folder of Markdown to take prose from")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--baseline-rev", default="8eb3336")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "kb-ingest-memory")
    parser.add_argument("--variants", default="old,new")
    parser.add_argument("--latency", action="store_true", help="also search latency during the largest ingest")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds one run may take")
    parser.add_argument("--keep-data", action="store_true", help="keep each run's data directory under --work")
    parser.add_argument("--parse-memory-mb", type=int, default=8192, help="KB_PARSE_MEMORY_MB for the old code")
    parser.add_argument("--new-parse-memory-mb", type=int, default=2048, help="KB_PARSE_MEMORY_MB for the new code")
    options = parser.parse_args()

    work = options.work
    work.mkdir(parents=True, exist_ok=True)
    trees = {"old": baseline_tree(options.baseline_rev, work / f"baseline-{options.baseline_rev}"), "new": REPO}
    variants = options.variants.split(",")
    sizes = [int(s) for s in options.sizes.split(",")]
    paragraphs = None
    files = {}
    for size in [*sizes, 1]:  # 1 MB: the warm-up document of the latency runs
        path = work / f"prose-{size}mb-seed{options.seed}.txt"
        if not path.is_file() or path.stat().st_size > size * 10**6:
            paragraphs = paragraphs or prose_paragraphs(options.source)
            make_text_file(path, size * 10**6, paragraphs, options.seed)
        files[size] = path
    print(f"files: {', '.join(f'{p.name} {p.stat().st_size / 1e6:.1f} MB' for p in files.values())}", file=sys.stderr)

    results: dict[str, Any] = {"runs": [], "latency": []}
    rows = []
    for size in sizes:
        for variant in variants:
            data = Path(tempfile.mkdtemp(prefix=f"{variant}-{size}mb-", dir=work))
            print(f"kb ingest {files[size].name} ({variant}) ...", file=sys.stderr, flush=True)
            record = run(
                variant, trees[variant], ["cli", str(files[size])], data / "kb", options.timeout,
                options.new_parse_memory_mb if variant == "new" else options.parse_memory_mb,
            )
            record.update(variant=variant, size_mb=size)
            if not options.keep_data:
                shutil.rmtree(data, ignore_errors=True)
            results["runs"].append(record)
            print(f"  {json.dumps(record)}", file=sys.stderr, flush=True)
            rows.append([
                f"{size} MB", variant, record["peak_rss_mb"], record.get("main_anon_peak_rss_mb"),
                record.get("main_file_peak_rss_mb"), record["rss_at_exit_mb"],
                record.get("rss_before_release_mb", "-"), record["rss_after_trim_mb"],
                record.get("helper_peak_rss_mb"), record.get("optimizer_peak_rss_mb", "-"), record["wall_s"],
                record["chunks"], record["exit"],
            ])
    headers = ["file", "code", "main peak MB", "heap peak MB", "file-backed peak MB", "main after MB", "before release MB", "after trim MB",
               "helper peak MB", "optimizer peak MB", "wall s", "chunks", "exit"]  # fmt: skip
    print(table(headers, rows))

    if options.latency:
        biggest = max(sizes)
        latency_rows = []
        for variant in variants:
            data = Path(tempfile.mkdtemp(prefix=f"latency-{variant}-", dir=work))
            print(f"search latency during {files[biggest].name} ({variant}) ...", file=sys.stderr, flush=True)
            record = run(
                variant, trees[variant], ["latency", str(files[biggest]), str(files[1])], data / "kb",
                options.timeout, options.new_parse_memory_mb if variant == "new" else options.parse_memory_mb,
            )
            record.update(variant=variant, size_mb=biggest)
            if not options.keep_data:
                shutil.rmtree(data, ignore_errors=True)
            results["latency"].append(record)
            during = sorted(record["during_ms"])
            idle = sorted(record["idle_ms"])
            latency_rows.append([
                variant, len(during), idle[len(idle) // 2], during[len(during) // 2],
                during[int(len(during) * 0.95)], during[-1], record["ingest_s"], record["app_peak_rss_mb"],
                record["app_rss_after_mb"], record["app_rss_after_trim_mb"],
            ])
        print()
        print(f"app-like process (index stays open): search latency (ms) during the {biggest} MB ingest, one search")
        print("every 0.5 s from another thread; the process's peak RSS, and its RSS after the job without and with")
        print("a malloc_trim(0) (new: the wiring's release_memory() has already run)")
        headers = ["code", "searches", "idle p50", "p50", "p95", "max", "ingest s", "peak MB", "after MB",
                   "after trim MB"]  # fmt: skip
        print(table(headers, latency_rows))

    results["command"] = " ".join(sys.argv)
    print(f"\nsaved {save('ingest_memory', results)}", file=sys.stderr)
    print(json.dumps(machine()), file=sys.stderr)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        mode, *rest = sys.argv[2:]
        if mode == "cli":
            file, variant, result = rest
            child_cli(variant, file, result)
        else:
            file, warmup, variant, result = rest
            child_latency(variant, file, warmup, result)
    else:
        main()
