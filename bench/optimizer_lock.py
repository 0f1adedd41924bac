"""Why kb optimizes its index in a child process: qdrant-edge's optimize() holds Python's lock.

    .venv/bin/python bench/optimizer_lock.py [--points 20000]

Fills an EdgeShard with random 384-dimensional points (enough for the optimizer to build an HNSW
graph), runs `optimize()` in a thread, and counts how often the main thread, which only sleeps 10 ms
at a time, gets to run meanwhile. A function that released the lock would let it tick ~100 times a
second; the app's chat and upload pages are such threads.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
import uuid

import numpy as np
import qdrant_edge as edge


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        config = edge.EdgeConfig(vectors={"dense": edge.EdgeVectorParams(size=384, distance=edge.Distance.Cosine)})
        shard = edge.EdgeShard.create(folder + "/shard", config)
        rng = np.random.default_rng(1)
        for first in range(0, args.points, 1000):
            vectors = rng.normal(size=(min(1000, args.points - first), 384)).astype("float32")
            points = [edge.Point(str(uuid.uuid4()), {"dense": v.tolist()}, {}) for v in vectors]
            shard.update(edge.UpdateOperation.upsert_points(points))
        finished = threading.Event()
        took: list[float] = []

        def optimize() -> None:
            started = time.perf_counter()
            shard.optimize()
            took.append(time.perf_counter() - started)
            finished.set()

        worker = threading.Thread(target=optimize)
        worker.start()
        ticks = 0
        while not finished.wait(0.01):
            ticks += 1
        worker.join()
        shard.close()
    print(f"optimize() on {args.points:,} points took {took[0]:.1f} s; the main thread ran {ticks} times "
          f"meanwhile (free to run: ~{took[0] * 100:.0f})")


if __name__ == "__main__":
    main()
