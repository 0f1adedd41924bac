"""The child process that builds an embedded generation's search structures.

    python -m kb.index.optimizer SHARD_PATH

qdrant's optimizers hold Python's lock for their whole run (minutes for a large dense index); run in
the app's process they would freeze every other thread, chat included, so EdgeIndexStore runs them here.
"""

from __future__ import annotations

import sys

import qdrant_edge as edge


def optimize_shard(path: str) -> None:
    shard = edge.EdgeShard.load(path)
    try:
        shard.optimize()
        shard.flush()
    finally:
        shard.close()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m kb.index.optimizer SHARD_PATH")
    optimize_shard(sys.argv[1])
