"""Parse large CSV files the way ingest does, through the parse helper, against unstructured's own CSV reader.

    .venv/bin/python bench/csv_parse.py [--rows 100000 400000 1000000] [--memory-mb 2048] [--json]

For each row count it writes a 10-column CSV (about 78 bytes a row), then parses it twice, each in a fresh
helper process under the same address-space cap as ingest (KB_PARSE_MEMORY_MB): `kb` is the real path
(`ParseSandbox` -> `parse_file` -> kb.parsing.delimited); `baseline` is what kb did before, unstructured's
`partition_csv` (pandas -> one HTML table -> lxml) with the table turned into rows by `table_text`, run in
a helper that applies the cap the same way. Prints wall time, the outcome, the table elements and the
helper's peak resident memory (VmHWM) and peak address space (VmPeak, what the cap limits).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, run_json, save, table  # noqa: E402

COLUMNS = ["id", "name", "city", "dept", "grade", "salary", "start", "manager", "email", "note"]
CITIES = ["Berlin", "Paris", "Lagos", "Lima", "Osaka", "Denver", "Quito", "Perth"]


def write_csv(path: Path, rows: int) -> None:
    rng = random.Random(1)
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(COLUMNS)
        for i in range(rows):
            writer.writerow([
                i, f"Person {i}", rng.choice(CITIES), f"D{i % 37}", rng.choice("ABCDE"), rng.randint(30000, 150000),
                f"20{rng.randint(10, 25)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}", f"M{i % 101}",
                f"p{i}@example.com", "ok, fine" if i % 5 == 0 else "",
            ])  # fmt: skip


def peaks(pid: int) -> dict[str, float]:
    """VmHWM (peak resident) and VmPeak (peak address space) of a live process, in MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmPeak"):
            fields[key] = round(int(value.split()[0]) / 1024)
    return {"peak_rss_mb": fields["VmHWM"], "peak_vm_mb": fields["VmPeak"]}


def run_kb(path: Path, memory_mb: int, timeout_s: float) -> dict:
    from kb.records import ParseError
    from kb.parsing import ParseSandbox

    sandbox = ParseSandbox(timeout_s=timeout_s, memory_mb=memory_mb)
    try:
        sandbox.parse(Path(__file__))  # start the helper and import the parsers before timing
    except ParseError:
        pass
    helper = next(child for child in psutil.Process().children() if "kb.parsing.helper" in " ".join(child.cmdline()))
    started = time.perf_counter()
    try:
        parsed = sandbox.parse(path, path.name, max_bytes=None)
        outcome, elements = "ok", len(parsed.elements)
        rows = sum(element.text.count("\n") for element in parsed.elements)  # data rows (header lines excluded)
    except ParseError as exc:
        outcome, elements, rows = f"failed: {exc.reason}", 0, 0
    seconds = time.perf_counter() - started
    memory = peaks(helper.pid) if helper.is_running() else {"peak_rss_mb": None, "peak_vm_mb": None}
    sandbox.close()
    return {"seconds": round(seconds, 1), "outcome": outcome, "elements": elements, "rows_out": rows, **memory}


def baseline_child(path: str, memory_mb: int) -> None:
    """unstructured's partition_csv as kb called it before, under the helper's cap; prints one JSON line."""
    from kb.parsing import decode_text
    from kb.parsing.partition import install_offline_text_classifier, table_text
    from unstructured.partition.csv import partition_csv

    install_offline_text_classifier()
    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    started = time.perf_counter()
    try:
        text = decode_text(Path(path).read_bytes())
        raw = partition_csv(file=io.BytesIO(text.encode("utf-8")), languages=[""])
        lines = [table_text(el.metadata.text_as_html) for el in raw if el.metadata.text_as_html]
        outcome, elements, rows = "ok", len(lines), sum(line.count("\n") for line in lines)
    except MemoryError:
        outcome, elements, rows = f"failed: MemoryError under {memory_mb} MB", 0, 0
    except Exception as exc:  # what kb reported as "file is damaged or not a valid CSV file"
        outcome, elements, rows = f"failed: {type(exc).__name__}: {str(exc)[:90]}", 0, 0
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": round(seconds, 1), "outcome": outcome, "elements": elements, "rows_out": rows,
                      **peaks(psutil.Process().pid)}))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 400_000, 1_000_000])
    parser.add_argument("--memory-mb", type=int, default=2048)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--json", action="store_true", help="also save bench/results/csv_parse.json")
    parser.add_argument("--baseline-child", nargs=2, metavar=("PATH", "MEMORY_MB"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline_child:
        baseline_child(args.baseline_child[0], int(args.baseline_child[1]))
        return
    print(json.dumps(machine()))
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for rows in args.rows:
            path = Path(tmp) / f"rows-{rows}.csv"
            write_csv(path, rows)
            size_mb = round(path.stat().st_size / 2**20, 1)
            kb = run_kb(path, args.memory_mb, args.timeout)
            base = run_json([sys.executable, __file__, "--baseline-child", str(path), str(args.memory_mb)])
            for name, result in (("kb", kb), ("baseline", base)):
                results.append({"rows": rows, "file_mb": size_mb, "reader": name, **result})
            path.unlink()
    headers = ["rows", "file_mb", "reader", "seconds", "peak_rss_mb", "peak_vm_mb", "elements", "rows_out", "outcome"]
    print(table(headers, [[r["rows"], r["file_mb"], r["reader"], r["seconds"], r["peak_rss_mb"], r["peak_vm_mb"],
                           r["elements"], r["rows_out"], r["outcome"]]
                          for r in results]))  # fmt: skip
    if args.json:
        print(save("csv_parse", {"memory_mb": args.memory_mb, "results": results}))


if __name__ == "__main__":
    main()
