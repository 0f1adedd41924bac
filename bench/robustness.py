"""Run every file of a folder through kb's real ingest path and report how each one ended.

    .venv/bin/python bench/robustness.py ../shared/data/ingestion [--json bench/results/robustness.json]

Prints: files, ok, failed by reason, crashes (must be 0: a job that ended in an internal error, or
a file with no outcome at all), the slowest files, the peak memory of this process and of the parse
helper, and whether anything was written outside the data directory (its parent and the working
directory are compared before and after).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from kb.config import load_settings
from kb.records import Job
from kb.service import KnowledgeBase


def listing(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def run(folder: Path) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="kb-robustness-"))
    data_dir = workdir / "data"
    os.chdir(workdir)
    before = listing(workdir) | {"data"}
    kb = KnowledgeBase(load_settings(data_dir=data_dir))
    timings: list[tuple[float, str]] = []
    outcomes: list[Job] = []
    last = time.perf_counter()

    def done(job: Job) -> None:
        nonlocal last
        now = time.perf_counter()
        timings.append((now - last, job.name))
        outcomes.append(job)
        last = now
        print(f"{job.outcome:<9} {job.name}: {job.message}", flush=True)

    started = time.perf_counter()
    try:
        submitted = kb.submit_paths([folder])
        kb.take_queue()
        last = time.perf_counter()
        kb.work_queue(on_done=done)
    finally:
        kb.close()
    elapsed = time.perf_counter() - started
    outside = sorted(p for p in listing(workdir) - before if not p.startswith("data"))

    reasons = Counter(job.message for job in outcomes if job.outcome == "failed")
    crashes = [job.name for job in outcomes if job.message.startswith("internal error")]
    crashes += [s.name for s in submitted if s.job_id not in {job.id for job in outcomes}]
    return {
        "folder": str(folder),
        "files": len(submitted),
        "ok": sum(job.outcome == "ok" for job in outcomes),
        "unchanged": sum(job.outcome == "unchanged" for job in outcomes),
        "failed": sum(job.outcome == "failed" for job in outcomes),
        "failed_by_reason": dict(reasons.most_common()),
        "crashes": crashes,
        "slowest": [{"seconds": round(s, 2), "file": name} for s, name in sorted(timings, reverse=True)[:5]],
        "seconds": round(elapsed, 1),
        "peak_rss_mb_main": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "peak_rss_mb_parse_helper": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024),
        "written_outside_data_dir": outside,
    }


def print_table(report: dict) -> None:
    print()
    print(f"{'files':<28}{report['files']}")
    print(f"{'ok':<28}{report['ok']}")
    print(f"{'unchanged (same bytes)':<28}{report['unchanged']}")
    print(f"{'failed':<28}{report['failed']}")
    for reason, count in report["failed_by_reason"].items():
        print(f"  {count:>4}  {reason}")
    print(f"{'crashes (must be 0)':<28}{len(report['crashes'])} {report['crashes'] or ''}")
    print(f"{'total time':<28}{report['seconds']} s")
    print(f"{'slowest files':<28}" + "; ".join(f"{s['file']} {s['seconds']} s" for s in report["slowest"][:3]))
    print(f"{'peak memory':<28}main {report['peak_rss_mb_main']} MB, parse helper {report['peak_rss_mb_parse_helper']} MB")
    print(f"{'written outside data dir':<28}{report['written_outside_data_dir'] or 'nothing'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args()
    folder = args.folder.resolve()
    json_path = args.json.resolve() if args.json else None
    report = run(folder)
    print_table(report)
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(report, indent=2))
    return 1 if report["crashes"] else 0


if __name__ == "__main__":
    sys.exit(main())
