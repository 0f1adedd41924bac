"""Commands for the queue's file jobs: `kb jobs` (a person's uploads, or everyone's), `kb cancel`, `kb retry`.

The same library calls as the Upload page's list and buttons (KnowledgeBase.uploads, cancel_job,
retry_job), on the catalog alone, so they work while the app holds the index.
"""

from __future__ import annotations

import json
import sys

import click

from kb.auth import LOCAL_ADMIN
from kb.cli.base import USER_OPTION, actor_of, cli, open_kb
from kb.uploads import about_left

_STATUS = {"queued": "waiting", "running": "working"}


@cli.command()
@click.option("--all", "everyone", is_flag=True, help="Everyone's uploads, not only yours.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@USER_OPTION
@click.pass_context
def jobs(ctx: click.Context, everyone: bool, as_json: bool, user: str | None) -> None:
    """List uploads: unfinished ones, and those finished in the last day that were not cleared.

    Yours are the files `kb ingest` added as the machine owner ("local admin"); --user shows that
    person's (as the Upload page does), --all everyone's."""
    with open_kb(ctx, index=False) as kb:
        actor = actor_of(kb, user)
        listed = kb.uploads(actor, everyone=everyone)
        eta = kb.uploads_eta(listed)
    if as_json:
        rows = [{"id": j.id, "name": j.name, "uploader": j.uploader, "status": j.status, "outcome": j.outcome,
                 "message": j.message, "size": j.size, "created_at": j.created_at, "finished_at": j.finished_at}
                for j in listed]
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    if not listed:
        click.echo("No uploads in the last day.")
        return
    for j in listed:
        state = _STATUS.get(j.status, j.outcome)
        who = f"  [{j.uploader}]" if everyone else ""
        click.echo(f"{j.id:>6}  {state:<9} {j.name}{who}" + (f"  ({j.message})" if j.message else ""))
    done = sum(j.status == "done" for j in listed)
    click.echo(f"{done} of {len(listed)} done" + (f", {about_left(eta)}" if eta is not None else ""), err=True)


@cli.command()
@click.argument("job_id", type=int)
@click.pass_context
def cancel(ctx: click.Context, job_id: int) -> None:
    """Cancel upload JOB_ID (from `kb jobs`): a waiting file never runs; one being worked on stops before
    it is indexed, leaving the index and the catalog as they were."""
    with open_kb(ctx, index=False) as kb:
        click.echo(kb.cancel_job(job_id, LOCAL_ADMIN))


@cli.command()
@click.argument("job_id", type=int)
@click.pass_context
def retry(ctx: click.Context, job_id: int) -> None:
    """Queue failed or cancelled upload JOB_ID again from its stored original, and ingest it here unless
    the app works the queue. Exits 1 if it fails again."""
    with open_kb(ctx, index=False) as kb:
        new_id = kb.retry_job(job_id, LOCAL_ADMIN)
        if not kb.take_queue():
            click.echo(f"queued again as job {new_id}; the app ingests it (`kb jobs` shows how it goes)")
            return
        kb.work_queue()
        job = kb.jobs([new_id])[0]
    click.echo(f"{job.outcome} {job.name}: {job.message}")
    sys.exit(1 if job.outcome == "failed" else 0)
