"""Query latency and process memory at 10k, 100k and 1M chunks: kb's embedded engine against qdrant-client local mode.

    .venv/bin/python bench/query_latency.py [--sizes 10000,100000,1000000] [--qdrant-max 10000]

Each index is built in one process and served from a fresh one (as the app would hold it), so the
memory figure is that of a process serving queries, not of the one that built the index. kb's index
is built the way a re-index builds it: chunks through `EdgeIndex.replace_document`, then
`EdgeIndexStore.optimize` (qdrant's optimizers, in a child process); both times are reported.
Chunks are synthetic passages made of handbook paragraphs (bench/common.py); queries are 4-8 words
from them. A query is timed as kb times it: `Retriever.search`, query encoding included (BM25, and
the dense query embedding in hybrid mode). Hybrid needs bench/models/all-MiniLM-L6-v2
(bench/setup_baseline.sh): queries are embedded for real, and a chunk's vector is the normalised mean
of its paragraphs' embeddings (embedding 100k whole passages takes hours on 2 cores; the 11k
paragraphs take ~12 min once and are cached in bench/models). Without the model, hybrid runs on random
vectors, which say nothing about recall. Hybrid rows also report the recall@50 of the approximate
dense search against an exact one on the same index.
qdrant-client local mode (what a LangChain user gets without a server) is brute force in numpy: it
builds at ~200 chunks/s and answers a keyword query in over a second at 10k chunks, so it runs only
up to --qdrant-max chunks, with 30 queries. Temporary indexes are deleted at the end of each size.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    BENCH, MINILM, MINILM_NAME, PYTHON, handbook_paragraphs, handbook_queries, peak_rss_mb, percentiles, ratio,
    rss_mb, rss_split_mb, run_json, save, synthetic_passages, table,
)

DIM = 384
QDRANT_LOCAL_QUERIES = 30  # a keyword query takes over a second there at 10k chunks
RECALL_QUERIES = 50
CHUNKS_PER_DOC = 20
BATCH = 2000
PARAGRAPH_VECTORS = BENCH / "models" / "handbook_paragraphs.npy"


def build(engine: str, size: int, hybrid: bool, folder: Path) -> dict:
    from kb.embedding import Bm25Encoder
    from kb.records import Chunk

    started = time.perf_counter()
    passages = synthetic_passages(size, handbook_paragraphs())
    texts = [text for text, _ in passages]
    counter = Bm25Encoder()
    avg_len = statistics.fmean(counter.token_count(t) for t in texts[:5000])
    sparse = Bm25Encoder(avg_len=avg_len)
    vectors = _chunk_vectors(passages) if hybrid else None
    prepared = time.perf_counter() - started
    started = time.perf_counter()
    optimized = None
    if engine == "edge":
        from kb.index import EdgeIndexStore, IndexedChunk, IndexSpec

        store = EdgeIndexStore(folder)
        index = store.create(IndexSpec("bench" if hybrid else None, DIM if hybrid else None, avg_len))
        for first in range(0, size, CHUNKS_PER_DOC):
            doc = f"doc{first // CHUNKS_PER_DOC}"
            rows = range(first, min(size, first + CHUNKS_PER_DOC))
            chunks = [Chunk(f"{doc}:1:{i - first}", doc, 1, i - first, f"{doc}.md", texts[i], title=doc) for i in rows]
            encoded = sparse.encode_documents([c.indexed_text for c in chunks])
            dense = [vectors[i] for i in rows] if vectors is not None else [None] * len(chunks)
            index.replace_document(doc, 1, [IndexedChunk(c, v, d) for c, v, d in zip(chunks, encoded, dense)])
        built = time.perf_counter() - started
        started = time.perf_counter()
        index = store.optimize(index)
        optimized = time.perf_counter() - started
        store.promote(index)
        index.close()
    else:
        from qdrant_client import QdrantClient, models

        client = QdrantClient(path=str(folder))
        client.create_collection(
            "kb",
            vectors_config={"dense": models.VectorParams(size=DIM, distance=models.Distance.COSINE)} if hybrid else {},
            sparse_vectors_config={"bm25": models.SparseVectorParams(modifier=models.Modifier.IDF)},
        )
        for first in range(0, size, BATCH):
            batch = texts[first : first + BATCH]
            encoded = sparse.encode_documents(batch)
            points = []
            for offset, (text, vector) in enumerate(zip(batch, encoded)):
                named: dict = {"bm25": models.SparseVector(indices=vector.indices, values=vector.values)}
                if vectors is not None:
                    named["dense"] = vectors[first + offset]
                points.append(models.PointStruct(id=str(uuid.uuid4()), vector=named,
                                                 payload={"text": text, "doc_id": f"doc{(first + offset) // 20}"}))
            client.upsert("kb", points)
        client.close()
        built = time.perf_counter() - started
    import resource

    return {"prepare_s": round(prepared, 1), "build_s": round(built, 1), "chunks_per_s": round(size / built),
            "optimize_s": optimized and round(optimized, 1), "bm25_avg_len": avg_len,
            "build_peak_rss_mb": peak_rss_mb(),
            "optimizer_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)}


def serve(engine: str, hybrid: bool, folder: Path, avg_len: float, queries: int) -> dict:
    from kb.embedding import Bm25Encoder

    sparse = Bm25Encoder(avg_len=avg_len)
    embed = _query_embedder() if hybrid else None
    asked = handbook_queries(handbook_paragraphs(), queries)
    before = rss_mb()
    started = time.perf_counter()
    if engine == "edge":
        from kb.index import EdgeIndexStore
        from kb.retrieval import Retriever

        index = EdgeIndexStore(folder).open_current()
        opened = time.perf_counter() - started
        retriever = Retriever(lambda: index, sparse, dense=embed)

        def search(query: str) -> int:
            return len(retriever.search(query, k=5))
    else:
        from qdrant_client import QdrantClient, models

        client = QdrantClient(path=str(folder))
        opened = time.perf_counter() - started

        def search(query: str) -> int:
            vector = sparse.encode_query(query)
            keywords = models.SparseVector(indices=vector.indices, values=vector.values)
            if embed is None:
                return len(client.query_points("kb", query=keywords, using="bm25", limit=5, with_payload=True).points)
            prefetch = [models.Prefetch(query=keywords, using="bm25", limit=50),
                        models.Prefetch(query=embed.embed_query(query), using="dense", limit=50)]
            return len(client.query_points("kb", prefetch=prefetch, query=models.FusionQuery(fusion=models.Fusion.RRF),
                                           limit=5, with_payload=True).points)
    search(asked[0])  # the first query pays for lazy loading; it is not what a user waits for afterwards
    timings, found = [], 0
    for query in asked:
        begun = time.perf_counter()
        found += search(query) > 0
        timings.append((time.perf_counter() - begun) * 1000)
    served = {"open_s": round(opened, 2), "rss_before_open_mb": before, "rss_mb": rss_mb(), **rss_split_mb(),
              "peak_rss_mb": peak_rss_mb(), "answered": found, **percentiles(timings),
              "query_encoder": (embed.model_id if embed is not None and hasattr(embed, "model_id") else None)}
    if engine == "edge" and embed is not None:  # after the memory reading: exact search reads every vector
        served["dense_recall_at_50"] = _dense_recall(index, embed, asked[:RECALL_QUERIES])
    return served


class _RandomQueries:
    """Stands in for a dense model when none is exported: a random vector, no encoding cost."""

    model_id = "random"
    dim = DIM

    def embed_query(self, text: str) -> list[float]:
        import numpy as np

        return _unit(np.random.default_rng(abs(hash(text)) % 2**32).normal(size=(1, DIM)))[0]


def _minilm():
    from kb.embedding import FastEmbedEmbedder

    return FastEmbedEmbedder(MINILM_NAME, Path(tempfile.gettempdir()) / "kb-bench-models", MINILM)


def _query_embedder():
    return _minilm() if (MINILM / "model.onnx").is_file() else _RandomQueries()


def _chunk_vectors(passages: list[tuple[str, list[int]]]) -> list[list[float]]:
    """A vector per passage: the normalised mean of its paragraphs' MiniLM embeddings (random without the model)."""
    import numpy as np

    if not (MINILM / "model.onnx").is_file():
        return _unit(np.random.default_rng(3).normal(size=(len(passages), DIM)))
    if not PARAGRAPH_VECTORS.is_file():
        print("embedding the handbook paragraphs once (~12 min on 2 cores)...", file=sys.stderr, flush=True)
        embedded = np.asarray(_minilm().embed_documents(handbook_paragraphs()), dtype="float32")
        np.save(PARAGRAPH_VECTORS, embedded)
    paragraphs = np.load(PARAGRAPH_VECTORS)
    return _unit(np.stack([paragraphs[parts].mean(axis=0) for _, parts in passages]))


def _dense_recall(index, embed, queries: list[str]) -> float:
    """Share of the exact 50 nearest chunks that kb's dense search (approximate: HNSW, int8) returns."""
    import qdrant_edge as edge

    from kb.index import DENSE

    found = []
    for query in queries:
        vector = embed.embed_query(query)
        request = edge.QueryRequest(limit=50, query=edge.Query.Nearest(vector, using=DENSE),
                                    params=edge.SearchParams(exact=True))
        exact = {str(p.id) for p in index._shard.query(request)}
        approx = {point for point, _ in index.search_ids(vector, 50)}
        found.append(len(exact & approx) / 50)
    return round(statistics.fmean(found), 3)


def _unit(matrix) -> list[list[float]]:
    import numpy as np

    return (matrix / np.linalg.norm(matrix, axis=1, keepdims=True)).astype("float32").tolist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--qdrant-max", type=int, default=10_000, help="largest size qdrant-client local mode runs at")
    parser.add_argument("--hybrid-max", type=int, default=100_000, help="largest size with dense vectors")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--worker", choices=["build", "serve"], help=argparse.SUPPRESS)
    parser.add_argument("--engine", choices=["edge", "qdrant-local"], help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--hybrid", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--avg-len", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == "build":
        print(json_line(build(args.engine, args.size, args.hybrid, args.folder)))
        return
    if args.worker == "serve":
        print(json_line(serve(args.engine, args.hybrid, args.folder, args.avg_len, args.queries)))
        return

    rows, results = [], []
    for size in [int(s) for s in args.sizes.split(",")]:
        for mode in ("keyword", "hybrid"):
            if mode == "hybrid" and size > args.hybrid_max:
                continue
            for engine in ("edge", "qdrant-local"):
                if engine == "qdrant-local" and size > args.qdrant_max:
                    continue
                folder = Path(tempfile.mkdtemp(prefix=f"kb-bench-{engine}-"))
                try:
                    common = [PYTHON, __file__, "--engine", engine, "--folder", str(folder)] + (["--hybrid"] if mode == "hybrid" else [])
                    built = run_json(common + ["--worker", "build", "--size", str(size)])
                    queries = args.queries if engine == "edge" else min(args.queries, QDRANT_LOCAL_QUERIES)
                    served = run_json(common + ["--worker", "serve", "--avg-len", str(built["bm25_avg_len"]),
                                                "--queries", str(queries)])
                    disk_mb = round(sum(f.stat().st_blocks * 512 for f in folder.rglob("*") if f.is_file()) / 2**20)
                finally:
                    shutil.rmtree(folder, ignore_errors=True)
                result = {"engine": engine, "mode": mode, "chunks": size, "disk_mb": disk_mb, **built, **served}
                results.append(result)
                print(f"{engine} {mode} {size}: p50 {served['p50']} ms, rss {served['rss_mb']} MB", file=sys.stderr, flush=True)
    by_key = {(r["engine"], r["mode"], r["chunks"]): r for r in results}
    for r in results:
        if r["engine"] != "edge":
            continue
        other = by_key.get(("qdrant-local", r["mode"], r["chunks"]))
        rows.append([
            f"{r['chunks']:,}", r["mode"], r["p50"], r["p95"], r.get("dense_recall_at_50"), r["rss_mb"],
            f"{r['rss_anon_mb']} + {r['rss_file_mb']}", r["open_s"], r["chunks_per_s"], r["optimize_s"], r["disk_mb"],
            other and other["p50"], other and other["p95"], other and other["rss_mb"], other and other["open_s"],
            other and other["chunks_per_s"], ratio(other and other["p50"], r["p50"]), ratio(other and other["rss_mb"], r["rss_mb"]),
        ])
    print(table(["chunks", "mode", "kb p50 ms", "kb p95 ms", "dense recall@50", "kb RSS MB", "heap + files MB",
                 "kb open s", "kb build chunks/s", "kb optimize s", "kb disk MB",
                 "qdrant-local p50", "p95", "RSS MB", "open s", "build chunks/s", "p50 ratio", "RSS ratio"], rows))
    path = save("query_latency", {"command": " ".join(["bench/query_latency.py", *sys.argv[1:]]), "results": results})
    print(f"\nwrote {path}")


def json_line(payload: dict) -> str:
    import json

    return json.dumps(payload)


if __name__ == "__main__":
    main()
