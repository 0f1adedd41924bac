"""`kb sync` of a handbook folder into a fresh data directory: the first run, then unchanged runs.

    .venv/bin/python bench/sync.py [FOLDER]    # default: ../shared/data/enterprise_kb/sourcegraph-handbook

Each run is the real command (`python -m kb.cli sync FOLDER --json`, a new process, so its start-up
counts) against a temporary KB_DATA_DIR with KB_SECRETS_FILE=/dev/null and the default settings
(BM25 keyword search, embedded engine). Runs, in order, on a copy of the folder:

1. first: every file added (parsed in the helper, chunked, indexed);
2. unchanged: nothing touched since; decided from size + mtime as the last sync saw them;
3. touched: every file's mtime changed, bytes not, so each file is read and its sha256 compared;
4. one changed: one file edited, so one new version.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import HANDBOOKS  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def run_sync(folder: Path, data: Path) -> tuple[float, dict]:
    env = {**os.environ, "KB_DATA_DIR": str(data), "KB_SECRETS_FILE": os.devnull, "PYTHONPATH": str(ROOT)}
    for name in ("KB_EMBEDDING", "KB_QDRANT_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL", "KB_SYNC_PATHS"):
        env.pop(name, None)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "kb.cli", "sync", str(folder), "--json"], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode not in (0, 1) or not done.stdout.strip():
        raise SystemExit(f"kb sync failed ({done.returncode}): {done.stderr[-2000:]}")
    return seconds, json.loads(done.stdout)


def main() -> None:
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else HANDBOOKS / "sourcegraph-handbook"
    work = Path(tempfile.mkdtemp(prefix="kb-bench-sync-"))
    try:
        folder = work / source.name
        shutil.copytree(source, folder, symlinks=True)
        data = work / "data"
        rows = []
        failed: dict[str, str] = {}

        def measure(label: str) -> None:
            seconds, report = run_sync(folder, data)
            counts = {k: v for k, v in report["counts"].items() if v}
            rows.append((label, seconds, report["seconds"], counts))
            failed.update({f["name"]: f["message"] for f in report["files"] if f["status"] == "failed"})
            print(f"{label:<12} {seconds:8.2f} s wall ({report['seconds']:.2f} s inside the sync)  {counts}", flush=True)

        measure("first")
        measure("unchanged")
        stamp = time.time() + 10
        for path in folder.rglob("*"):
            if path.is_file():
                os.utime(path, (stamp, stamp))
        measure("touched")
        some = sorted(p for p in folder.rglob("*.md") if not any(part.startswith(".") for part in p.parts))[0]
        some.write_text(some.read_text(encoding="utf-8") + "\n\nOne more line for the benchmark.\n", encoding="utf-8")
        measure("one changed")
        files = sum(rows[0][3].values())
        print(f"\n{files} files in {source}")
        for name, reason in sorted(failed.items()):
            print(f"  failed {name}: {reason}")
        print("| run | wall s | inside the sync s | outcome |")
        print("|---|---|---|---|")
        for label, wall, inside, counts in rows:
            print(f"| {label} | {wall:.2f} | {inside:.2f} | {', '.join(f'{v} {k}' for k, v in counts.items())} |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
