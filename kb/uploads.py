"""A person's uploads: which of their file jobs they are shown, and how long the rest will take.

The list is read from the catalog (`SqliteCatalog.uploads`), not from a browser session, so a reload, a
second tab or a restart shows the same files: everything unfinished, and what finished in the last
UPLOADS_SHOWN_S seconds until its submitter clears it. The estimate is the pace of the files already
done in the same batches (bytes per second, or files per second when their sizes are unknown).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone

from kb.records import Job

UPLOADS_SHOWN_S = 24 * 3600  # a finished upload stays on its submitter's list this long (unless cleared)


def shown_since(now: datetime | None = None) -> str:
    """The catalog timestamp from which finished uploads are still shown."""
    moment = (now or datetime.now(timezone.utc)) - timedelta(seconds=UPLOADS_SHOWN_S)
    return moment.isoformat(timespec="seconds")


def _time(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp)


def eta_seconds(jobs: Sequence[Job]) -> float | None:
    """Seconds until the unfinished jobs among `jobs` (whole batches) are done, at the pace the finished
    ones went from the first start to the last finish; None while nothing is left or nothing has finished."""
    left = [j for j in jobs if j.status != "done"]
    done = [j for j in jobs if j.status == "done" and j.outcome != "cancelled" and j.started_at and j.finished_at]
    if not left or not done:
        return None
    elapsed = (max(_time(j.finished_at) for j in done) - min(_time(j.started_at) for j in done)).total_seconds()
    elapsed = max(elapsed, 1.0)  # the catalog keeps whole seconds
    done_bytes = sum(j.size for j in done)
    left_bytes = sum(j.size for j in left)
    if done_bytes > 0 and left_bytes > 0:
        return left_bytes / (done_bytes / elapsed)
    return len(left) / (len(done) / elapsed)


def about_left(seconds: float) -> str:
    """"about 3 min left" (at least one minute: the estimate is not finer than that); hours beyond 90 min."""
    minutes = max(1, math.ceil(seconds / 60))
    if minutes > 90:
        return f"about {round(minutes / 60)} h left"
    return f"about {minutes} min left"
