"""The `kb` command line: the product's jobs for scripts and admins.

`base` holds the group and what every command shares; the commands live by what they touch:
`documents` (ingest, docs, delete, groups), `jobs` (jobs, cancel, retry), `reading` (search, ask),
`admin` (reindex, stats, worker, eval).
"""

from kb.cli import admin, documents, jobs, reading  # noqa: F401  (importing them registers their commands)
from kb.cli.base import cli

__all__ = ["cli", "main"]


def main() -> None:
    cli(prog_name="kb")
