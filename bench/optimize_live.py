"""Searching while the serving index is optimized: what KB_OPTIMIZE_AFTER triggers in the app.

    .venv/bin/python bench/optimize_live.py [--size 100000] [--added 10000]

Builds an optimized hybrid index of --size chunks the way bench/query_latency.py does, opens it as
the app would, adds --added chunks through `replace_document` (they land in a segment searched by
brute force), then runs `EdgeIndexStore.compact` in a thread (the queue worker's place) while the main
thread keeps searching, and swaps the optimized copy in. Prints hybrid search p50/p95 (Retriever, query
encoding included) before the new chunks, with them unoptimized, during compaction and after it.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    PYTHON, handbook_paragraphs, handbook_queries, percentiles, run_json, save, synthetic_passages, table,
)
from query_latency import CHUNKS_PER_DOC, _chunk_vectors, _query_embedder  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--added", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()

    from kb.embedding import Bm25Encoder
    from kb.index import EdgeIndexStore, IndexedChunk
    from kb.records import Chunk
    from kb.retrieval import Retriever

    folder = Path(tempfile.mkdtemp(prefix="kb-bench-live-"))
    try:
        script = str(Path(__file__).resolve().parent / "query_latency.py")
        built = run_json([PYTHON, script, "--engine", "edge", "--folder", str(folder), "--hybrid",
                          "--worker", "build", "--size", str(args.size)])
        store = EdgeIndexStore(folder)
        serving = [store.open_current()]
        sparse = Bm25Encoder(avg_len=built["bm25_avg_len"])
        retriever = Retriever(lambda: serving[0], sparse, dense=_query_embedder())
        asked = handbook_queries(handbook_paragraphs(), args.queries)

        def measure(until: threading.Event | None = None) -> dict:
            """Ask every query once, or over and over until `until` is set."""
            timings: list[float] = []
            while (len(timings) < len(asked)) if until is None else not until.is_set():
                started = time.perf_counter()
                retriever.search(asked[len(timings) % len(asked)], k=5)
                timings.append((time.perf_counter() - started) * 1000)
            return {"queries": len(timings), **percentiles(timings), "max": round(max(timings), 1)}

        rows = {"optimized": measure()}
        passages = synthetic_passages(args.size + args.added, handbook_paragraphs(), seed=8)[args.size:]
        vectors = _chunk_vectors(passages)
        for first in range(0, args.added, CHUNKS_PER_DOC):
            doc = f"new{first // CHUNKS_PER_DOC}"
            span = range(first, min(args.added, first + CHUNKS_PER_DOC))
            chunks = [Chunk(f"{doc}:1:{i - first}", doc, 1, i - first, f"{doc}.md", passages[i][0]) for i in span]
            encoded = sparse.encode_documents([c.indexed_text for c in chunks])
            serving[0].replace_document(doc, 1, [IndexedChunk(c, v, vectors[i]) for c, v, i in zip(chunks, encoded, span)])
        rows[f"+{args.added:,} unoptimized"] = measure()

        done = threading.Event()
        compacted: list = []

        def compact() -> None:
            started = time.perf_counter()
            compacted.append(store.compact(serving[0]))
            compacted.append(time.perf_counter() - started)
            done.set()

        worker = threading.Thread(target=compact)
        worker.start()
        rows["during compaction"] = measure(done)
        worker.join()
        old, serving[0] = serving[0], compacted[0]
        store.promote(serving[0])
        old.close()
        rows["after compaction"] = measure()
        serving[0].close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"{args.size:,} chunks built in {built['build_s']} s and optimized in {built['optimize_s']} s; "
          f"compaction after {args.added:,} more chunks took {compacted[1]:.1f} s")
    print(table(["index", "queries", "p50 ms", "p95 ms", "max ms"],
                [[name, r["queries"], r["p50"], r["p95"], r["max"]] for name, r in rows.items()]))
    path = save("optimize_live", {"command": " ".join(["bench/optimize_live.py", *sys.argv[1:]]), "built": built,
                                  "compaction_s": round(compacted[1], 1), "rows": rows})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
