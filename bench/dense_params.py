"""How the dense search's parameters trade recall for time, on one 100k-chunk hybrid index.

    .venv/bin/python bench/dense_params.py [--size 100000] [--queries 100]

Builds the index as bench/query_latency.py does (kb's ingest path, then `EdgeIndexStore.optimize`:
HNSW with ef_construct 64 over int8 vectors), then asks the same MiniLM query embeddings with each
search beam (hnsw_ef) and int8 oversampling (candidates rescored with the float vectors), and
reports recall@10 and recall@50 against an exact search of the same index, and the p50 of the
search alone (no payloads, no query encoding). kb searches with the values in kb/index/edge.py (_SEARCH).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import PYTHON, handbook_paragraphs, handbook_queries, run_json, save, table  # noqa: E402
from query_latency import _query_embedder  # noqa: E402

EFS = (None, 64, 128, 256)
OVERSAMPLING = (None, 2.0)


def sweep(folder: Path, queries: int) -> list[dict]:
    import qdrant_edge as edge

    from kb.index import DENSE, EdgeIndexStore

    index = EdgeIndexStore(folder).open_current()
    embed = _query_embedder()
    vectors = [embed.embed_query(q) for q in handbook_queries(handbook_paragraphs(), queries)]

    def nearest(vector: list[float], params) -> list:
        request = edge.QueryRequest(limit=50, query=edge.Query.Nearest(vector, using=DENSE), params=params)
        return [p.id for p in index._shard.query(request)]

    exact = [nearest(v, edge.SearchParams(exact=True)) for v in vectors]
    rows = []
    for ef in EFS:
        for oversampling in OVERSAMPLING:
            quantization = edge.QuantizationSearchParams(rescore=True, oversampling=oversampling) if oversampling else None
            params = edge.SearchParams(hnsw_ef=ef, quantization=quantization)
            at10, at50, times = [], [], []
            for vector, truth in zip(vectors, exact):
                started = time.perf_counter()
                found = nearest(vector, params)
                times.append((time.perf_counter() - started) * 1000)
                at10.append(len(set(found[:10]) & set(truth[:10])) / 10)
                at50.append(len(set(found) & set(truth)) / 50)
            rows.append({"hnsw_ef": ef, "oversampling": oversampling, "recall_at_10": round(statistics.fmean(at10), 3),
                         "recall_at_50": round(statistics.fmean(at50), 3), "p50_ms": round(statistics.median(times), 2)})
    index.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        import json

        print(json.dumps({"rows": sweep(args.worker, args.queries)}))
        return
    folder = Path(tempfile.mkdtemp(prefix="kb-bench-dense-"))
    try:
        script = str(Path(__file__).resolve().parent / "query_latency.py")
        built = run_json([PYTHON, script, "--engine", "edge", "--folder", str(folder), "--hybrid",
                          "--worker", "build", "--size", str(args.size)])
        rows = run_json([PYTHON, __file__, "--worker", str(folder), "--queries", str(args.queries)])["rows"]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"{args.size:,} chunks: built in {built['build_s']} s, optimized in {built['optimize_s']} s")
    print(table(["hnsw_ef", "oversampling", "recall@10", "recall@50", "search p50 ms"],
                [[r["hnsw_ef"] or "default", r["oversampling"] or "none", r["recall_at_10"], r["recall_at_50"], r["p50_ms"]]
                 for r in rows]))
    path = save("dense_params", {"command": " ".join(["bench/dense_params.py", *sys.argv[1:]]), "built": built, "rows": rows})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
