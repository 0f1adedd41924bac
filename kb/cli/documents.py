"""Commands that add, list, delete and re-label documents: `kb ingest`, `sync`, `docs`, `delete`, `groups`."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

import click
from tqdm import tqdm

from kb.auth import LOCAL_ADMIN, Actor
from kb.cli.base import USER_OPTION, actor_of, cli, open_kb
from kb.records import Job, SyncedFile
from kb.service import KnowledgeBase


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--uploader", default="", help="Who added these files (kept in the catalog as their owner).")
@click.option("--group", "groups", multiple=True,
              help="Limit the documents to this group (repeatable); on an existing document, sets its groups.")
@click.option("--user", default=None,
              help="Ingest with this user's rights, as the Upload page does (default: the machine owner, an admin).")
@click.pass_context
def ingest(ctx: click.Context, paths: tuple[Path, ...], uploader: str, groups: tuple[str, ...], user: str | None) -> None:
    """Add files and folders (recursively) to the knowledge base.

    Prints one line per file: `ok|unchanged|failed NAME: reason`. Exits 1 if any file failed.
    When the app holds the index, the files are queued and the app ingests them.
    """
    failed = 0
    with open_kb(ctx, index=False) as kb:
        submitted = kb.submit_paths(
            paths, actor=actor_of(kb, user), groups=groups or None, uploader=uploader if user is None else "",
        )
        pending = {s.job_id for s in submitted}
        bar = tqdm(total=len(submitted), unit="file", file=sys.stderr, disable=None)

        def report(job: Job) -> None:
            nonlocal failed
            if job.id not in pending:
                return
            pending.discard(job.id)
            failed += job.outcome == "failed"
            tqdm.write(f"{job.outcome} {job.name}: {job.message}", file=sys.stdout)
            bar.update(1)

        if not kb.take_queue():
            click.echo(f"The index is open in another kb process: {len(submitted)} files queued there; waiting.", err=True)
        kb.work_queue(on_done=report)
        kb.wait(sorted(pending), on_done=report)
        bar.close()
    sys.exit(1 if failed else 0)


@cli.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--group", "groups", multiple=True,
              help="Limit the folder's documents to this group (repeatable); sets it on existing ones too.")
@click.option("--delete", is_flag=True, help="Delete the documents this sync added whose file is gone.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON instead of lines.")
@click.option("--user", default=None,
              help="Sync with this user's rights, as the Upload page does (default: the machine owner, an admin).")
@click.pass_context
def sync(ctx: click.Context, path: Path, groups: tuple[str, ...], delete: bool, as_json: bool, user: str | None) -> None:
    """Mirror folder PATH into the knowledge base: new files are added, changed ones become new versions,
    unchanged ones are not read again; with --delete, documents it added whose file is gone are deleted.

    Prints one line per file, `added|new version|unchanged|removed|kept|failed NAME: reason`, then a summary
    on stderr. Exits 1 if the folder could not be read or a file failed. Nothing is deleted when the folder
    is missing, unreadable or empty.
    """
    def shown(result: SyncedFile) -> None:
        if not as_json:
            click.echo(f"{result.status} {result.name}: {result.message}")

    with open_kb(ctx, index=False) as kb:
        if not kb.take_queue():
            click.echo("The index is open in another kb process: changed files are queued there; waiting.", err=True)
        report = kb.sync_folder(path, actor=actor_of(kb, user), groups=groups or None, delete=delete, on_file=shown)
    if as_json:
        click.echo(json.dumps({**asdict(report), "outcome": report.outcome}, ensure_ascii=False, indent=2))
    else:
        for note in report.notes:
            click.echo(f"note: {note}", err=True)
        click.echo(f"{report.root}: {report.summary()} ({report.seconds:.1f} s)", err=True)
    sys.exit(1 if report.outcome == "failed" or report.counts.get("failed") else 0)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@USER_OPTION
@click.pass_context
def docs(ctx: click.Context, as_json: bool, user: str | None) -> None:
    """List the documents with their status, version, pages and chunks."""
    with open_kb(ctx, index=False) as kb:  # the catalog alone: works while the app runs
        documents = kb.documents(actor=actor_of(kb, user))
    if as_json:
        rows = [{**d.__dict__, "groups": list(d.groups)} for d in documents]
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    if not documents:
        click.echo("No documents yet. Add some with `kb ingest PATH`.")
    for d in documents:
        pages = f"{d.pages}p" if d.pages else "-"
        line = f"{d.doc_id}  {d.status:<7} v{d.version:<3} {pages:>5} {d.chunks:>5} chunks  {d.name}"
        click.echo(line + (f"  ({d.error})" if d.error else ""))


def run_job(kb: KnowledgeBase, job_id: int, label: str) -> Job:
    """Work one queued job here if this process holds the index, else wait for the holder."""
    bar = tqdm(total=0, desc=label, file=sys.stderr, disable=None)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    if kb.take_queue():
        kb.work_queue(progress=progress)
    else:
        click.echo("The index is busy in another process; the job is queued there. Waiting.", err=True)
    kb.wait([job_id], on_done=lambda job: None)
    bar.close()
    return kb.jobs([job_id])[0]


def one_document(kb: KnowledgeBase, name: str | None, doc_id: str | None, actor: Actor) -> str:
    """The id of the document given by --id, or by a name that only one visible document has."""
    if (name is None) == (doc_id is None):
        raise click.UsageError("give a document NAME or --id ID (one of them)")
    if doc_id is not None:
        return doc_id
    found = kb.find_documents(name or "", actor=actor)
    if not found:
        raise click.ClickException(f"no document named {name!r}; `kb docs` lists them")
    if len(found) > 1:
        ids = ", ".join(f"{d.doc_id} (owner {d.owner or '?'})" for d in found)
        raise click.ClickException(f"{len(found)} documents are named {name!r}: choose one with --id ({ids})")
    return found[0].doc_id


@cli.command()
@click.argument("name", required=False)
@click.option("--id", "doc_id", default=None, help="The document's id (from `kb docs`) instead of its name.")
@click.pass_context
def delete(ctx: click.Context, name: str | None, doc_id: str | None) -> None:
    """Remove document NAME (or --id ID) from the index, the catalog and the stored originals."""
    with open_kb(ctx, worker=True) as kb:
        chosen = one_document(kb, name, doc_id, LOCAL_ADMIN)
        job_id = kb.submit_delete(chosen, LOCAL_ADMIN)
        job = run_job(kb, job_id, "delete")
    click.echo(job.message)
    sys.exit(0 if job.outcome == "ok" else 1)


@cli.command()
@click.argument("name", required=False)
@click.option("--id", "doc_id", default=None, help="The document's id (from `kb docs`) instead of its name.")
@click.option("--group", "groups", multiple=True, help="Visible only to this group and admins (repeatable).")
@click.option("--everyone", is_flag=True, help="Visible to everyone.")
@USER_OPTION
@click.pass_context
def groups(ctx: click.Context, name: str | None, doc_id: str | None, groups: tuple[str, ...], everyone: bool,
           user: str | None) -> None:
    """Show or change who may see document NAME (or --id ID): `--group G` (repeatable) or `--everyone`.

    The change applies at once to every version, in search, answers, lists and downloads."""
    if groups and everyone:
        raise click.UsageError("--group and --everyone contradict each other")
    with open_kb(ctx, worker=True) as kb:
        actor = actor_of(kb, user)
        chosen = one_document(kb, name, doc_id, actor)
        if not groups and not everyone:
            doc = next((d for d in kb.documents(actor=actor) if d.doc_id == chosen), None)
            if doc is None:
                raise click.ClickException(f"there is no document with id {chosen!r}")
            click.echo(", ".join(doc.groups) if doc.groups else "everyone")
            return
        job_id = kb.set_groups(chosen, groups, actor)
        job = run_job(kb, job_id, "groups")
    click.echo(job.message)
    sys.exit(0 if job.outcome == "ok" else 1)
