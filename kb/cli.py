"""The `kb` command line: the product's jobs for scripts and admins.

Output meant for scripts (`--json`, `--batch`, the `ok|unchanged|failed NAME: reason` lines of
`kb ingest`) goes to stdout; progress bars and warnings go to stderr.
"""

from __future__ import annotations

import json
import logging
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import click
from tqdm import tqdm

from kb.auth import LOCAL_ADMIN, Actor, NotAuthorized, actor_for
from kb.config import ConfigError, load_settings
from kb.index import IndexUnavailable
from kb.records import Answer, Job, Passage
from kb.service import IndexBusy, KnowledgeBase


@contextmanager
def _open(ctx: click.Context, *, worker: bool = False) -> Iterator[KnowledgeBase]:
    """Open the knowledge base, turning setup problems into one clear line instead of a traceback."""
    try:
        settings = load_settings(**ctx.obj)
        kb = KnowledgeBase(settings)
    except (ConfigError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        if worker:
            kb.take_queue()
        else:
            kb.open_index()
        for warning in kb.warnings:
            click.echo(f"warning: {warning}", err=True)
        yield kb
    except (IndexBusy, IndexUnavailable, OSError) as exc:  # OSError: a full disk, a read-only data directory
        raise click.ClickException(str(exc)) from exc
    finally:
        _close(kb)


def _close(kb: KnowledgeBase) -> None:
    """Close, with a failure to save the index (a disk filled by someone else) as one line."""
    try:
        kb.close()
    except (IndexUnavailable, OSError) as exc:
        raise click.ClickException(str(exc)) from exc


USER_OPTION = click.option(
    "--user", default=None,
    help="Answer as this user (e-mail or name): only documents of their groups (KB_USER_GROUPS). "
    "Default: the machine owner, who sees everything.",
)


def _actor(kb: KnowledgeBase, user: str | None) -> Actor:
    return LOCAL_ADMIN if user is None else actor_for(user, kb.settings)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--data-dir", type=click.Path(path_type=Path), help="Data directory (default: KB_DATA_DIR).")
@click.option("-v", "--verbose", is_flag=True, help="Log what happens inside.")
@click.version_option(package_name="kb")
@click.pass_context
def cli(ctx: click.Context, data_dir: Path | None, verbose: bool) -> None:
    """kb: ask questions of your company's files and see the passages each answer comes from."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    ctx.obj = {"data_dir": data_dir}


# ingest ----------------------------------------------------------------------------------------
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
    try:
        kb = KnowledgeBase(load_settings(**ctx.obj))
    except (ConfigError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    failed = 0
    try:
        submitted = kb.submit_paths(
            paths, actor=_actor(kb, user), groups=groups or None, uploader=uploader if user is None else "",
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
    except (IndexBusy, IndexUnavailable, OSError) as exc:  # OSError: a full disk, a read-only data directory
        raise click.ClickException(str(exc)) from exc
    finally:
        _close(kb)
    sys.exit(1 if failed else 0)


# search ----------------------------------------------------------------------------------------
def passage_json(passage: Passage) -> dict[str, Any]:
    chunk = passage.chunk
    return {
        "rank": passage.rank,
        "score": round(passage.score, 6),
        "doc_id": chunk.doc_id,
        "chunk_id": chunk.chunk_id,
        "source": chunk.source,
        "page": chunk.page_start,
        "text": chunk.text,
    }


def _page(passage: Passage) -> str:
    chunk = passage.chunk
    if chunk.page_start is None:
        return ""
    if chunk.page_end and chunk.page_end != chunk.page_start:
        return f", pages {chunk.page_start}-{chunk.page_end}"
    return f", page {chunk.page_start}"


@cli.command()
@click.argument("query", required=False)
@click.option("-k", "k", default=5, show_default=True, type=click.IntRange(1, 1000), help="Passages to return.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--batch", type=click.File("r"), help='JSONL file of {"id": ..., "query": ...}; prints JSONL.')
@USER_OPTION
@click.pass_context
def search(ctx: click.Context, query: str | None, k: int, as_json: bool, batch: Any, user: str | None) -> None:
    """Find the passages that best match QUERY."""
    if (query is None) == (batch is None):
        raise click.UsageError("give a QUERY or --batch FILE (one of them)")
    with _open(ctx) as kb:
        if batch is not None:
            for line_no, line in enumerate(batch, 1):
                if not line.strip():
                    continue
                try:
                    item = json.loads(line)
                    qid, text = item["id"], str(item["query"])
                except (ValueError, KeyError, TypeError) as exc:
                    raise click.ClickException(f"line {line_no} of the batch file is not {{'id', 'query'}} JSON") from exc
                results = [passage_json(p) for p in kb.search(text, k=k, actor=_actor(kb, user))]
                click.echo(json.dumps({"id": qid, "results": results}, ensure_ascii=False))
            return
        passages = kb.search(query or "", k=k, actor=_actor(kb, user))
        _say_mode(kb)
        if as_json:
            click.echo(json.dumps([passage_json(p) for p in passages], ensure_ascii=False, indent=2))
            return
        if not passages:
            click.echo("No matching passages.")
        for p in passages:
            click.echo(f"{p.rank}. {p.chunk.source}{_page(p)}  (score {p.score:.3f})")
            click.echo("   " + _excerpt(p.chunk.text))


def _say_mode(kb: KnowledgeBase) -> None:
    """One line on stderr saying how the answer was found, so nobody mistakes keyword search for more."""
    search = "hybrid search" if kb.search_mode == "hybrid" else "keyword search only (no embedding model)"
    answers = f"LLM {kb.settings.llm_model}" if kb.settings.llm_enabled else "extractive answers (no LLM)"
    click.echo(f"[{search}; {answers}]", err=True)


def _excerpt(text: str, width: int = 240) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


# ask -------------------------------------------------------------------------------------------
def answer_json(answer: Answer) -> dict[str, Any]:
    return {
        "answer": answer.text,
        "mode": answer.mode,
        "citations": [
            {
                "n": c.n,
                "doc_id": c.passage.chunk.doc_id,
                "chunk_id": c.passage.chunk.chunk_id,
                "source": c.passage.chunk.source,
                "page": c.passage.chunk.page_start,
                "text": c.passage.chunk.text,
                "score": round(c.passage.score, 6),
            }
            for c in answer.citations
        ],
    }


@cli.command()
@click.argument("question")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@USER_OPTION
@click.pass_context
def ask(ctx: click.Context, question: str, as_json: bool, user: str | None) -> None:
    """Answer QUESTION from the documents, citing the passages used."""
    with _open(ctx) as kb:
        answer = kb.ask(question, actor=_actor(kb, user))
        _say_mode(kb)
        if as_json:
            click.echo(json.dumps(answer_json(answer), ensure_ascii=False, indent=2))
            return
        click.echo(answer.text)
        if answer.citations:
            click.echo()
        for c in answer.citations:
            click.echo(f"[{c.n}] {c.passage.chunk.source}{_page(c.passage)}: {_excerpt(c.passage.chunk.text, 160)}")
        if not answer.found and answer.passages:
            click.echo("\nClosest passages:")
            for p in answer.passages[:3]:
                click.echo(f"- {p.chunk.source}{_page(p)}: {_excerpt(p.chunk.text, 160)}")


# documents and admin ---------------------------------------------------------------------------
@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@USER_OPTION
@click.pass_context
def docs(ctx: click.Context, as_json: bool, user: str | None) -> None:
    """List the documents with their status, version, pages and chunks."""
    try:
        kb = KnowledgeBase(load_settings(**ctx.obj))  # the catalog alone: works while the app runs
    except (ConfigError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        documents = kb.documents(actor=_actor(kb, user))
    finally:
        _close(kb)
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


def _run_job(kb: KnowledgeBase, job_id: int, label: str) -> Job:
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
    return kb.catalog.jobs([job_id])[0]


def _one_document(kb: KnowledgeBase, name: str | None, doc_id: str | None, actor: Actor) -> str:
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
    with _open(ctx, worker=True) as kb:
        chosen = _one_document(kb, name, doc_id, LOCAL_ADMIN)
        try:
            job_id = kb.submit_delete(chosen, LOCAL_ADMIN)
        except NotAuthorized as exc:
            raise click.ClickException(str(exc)) from exc
        job = _run_job(kb, job_id, "delete")
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
    with _open(ctx, worker=True) as kb:
        actor = _actor(kb, user)
        chosen = _one_document(kb, name, doc_id, actor)
        if not groups and not everyone:
            doc = next((d for d in kb.documents(actor=actor) if d.doc_id == chosen), None)
            if doc is None:
                raise click.ClickException(f"there is no document with id {chosen!r}")
            click.echo(", ".join(doc.groups) if doc.groups else "everyone")
            return
        try:
            job_id = kb.set_groups(chosen, groups, actor)
        except NotAuthorized as exc:
            raise click.ClickException(str(exc)) from exc
        job = _run_job(kb, job_id, "groups")
    click.echo(job.message)
    sys.exit(0 if job.outcome == "ok" else 1)


@cli.command()
@click.pass_context
def reindex(ctx: click.Context) -> None:
    """Rebuild the index from the stored originals; the new one replaces the old only when complete."""
    with _open(ctx, worker=True) as kb:
        job = _run_job(kb, kb.submit_reindex(LOCAL_ADMIN), "re-index")
    click.echo(f"{job.outcome}: {job.message}")
    sys.exit(0 if job.outcome == "ok" else 1)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def stats(ctx: click.Context, as_json: bool) -> None:
    """Show index statistics: documents, chunks, size, models, last re-index."""
    with _open(ctx) as kb:
        numbers = kb.stats()
    if as_json:
        click.echo(json.dumps(numbers, indent=2, default=str))
        return
    for key, value in numbers.items():
        click.echo(f"{key}: {value}")


@cli.command()
@click.option("--poll", default=1.0, show_default=True, help="Seconds between looks at the queue.")
@click.pass_context
def worker(ctx: click.Context, poll: float) -> None:
    """Hold the index and work the queue until interrupted (what the app does in the background)."""
    import time

    with _open(ctx, worker=True) as kb:
        if not kb.take_queue():
            raise click.ClickException("another kb process is already working the queue")
        click.echo(f"Working the queue in {kb.settings.data_dir} (Ctrl-C to stop).", err=True)
        try:
            while True:
                kb.work_queue(on_done=lambda job: click.echo(f"{job.outcome} {job.kind} {job.name}: {job.message}"))
                time.sleep(poll)
        except KeyboardInterrupt:
            pass


# evaluation ------------------------------------------------------------------------------------
@cli.command(name="eval")
@click.argument("dataset", type=click.Path(exists=True, path_type=Path))
@click.option("--files", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="With a questions JSONL ({question, source, page} per line): the folder of files it asks about.")
@click.option("--mode", type=click.Choice(["keyword", "dense", "hybrid"]), default="keyword", show_default=True,
              help="dense and hybrid need KB_EMBEDDING.")
@click.option("--split", default="test", show_default=True, help="BEIR: score the queries of qrels/SPLIT.tsv.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def evaluate(ctx: click.Context, dataset: Path, files: Path | None, mode: str, split: str, as_json: bool) -> None:
    """Measure retrieval quality on DATASET: a BEIR folder (corpus.jsonl, queries.jsonl, qrels/),
    or a JSONL of questions about the files in --files.

    Builds a throw-away index in a temporary folder; your knowledge base is not touched.
    """
    from kb.evaluation import DatasetError, evaluate_beir, evaluate_questions

    try:
        settings = load_settings(**ctx.obj)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    say = (lambda message: click.echo(f"{message} ...", err=True)) if not as_json else None
    try:
        if dataset.is_dir():
            if files is not None:
                raise click.UsageError("--files goes with a questions JSONL, not with a BEIR folder")
            report = evaluate_beir(dataset, settings, mode, split, progress=say)  # type: ignore[arg-type]
        else:
            if files is None:
                raise click.UsageError("a questions file needs --files FOLDER (the files it asks about)")
            report = evaluate_questions(dataset, files, settings, mode, progress=say)  # type: ignore[arg-type]
    except (DatasetError, IndexBusy, IndexUnavailable) as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(report, ensure_ascii=False, indent=2))
        return
    for line in _report_lines(report):
        click.echo(line)


def _report_lines(report: dict[str, Any]) -> Iterator[str]:
    setup = report["settings"]
    yield f"{report['dataset']} ({report['format']}), mode {report['mode']}, dense model {setup['dense_model'] or 'none'}"
    if report["format"] == "beir":
        yield f"{report['queries']} queries, {report['documents']} documents, {report['chunks']} chunks"
        yield "  ".join(f"{name} {value:.4f}" for name, value in report["metrics"].items())
    else:
        failed = len(report["failed_files"])
        yield f"{report['questions']} questions, {report['files']} files ({failed} failed)"
        yield f"{'':<10}" + "".join(f"{'hit@' + str(k):>9}" for k in (1, 3, 5, 10)) + f"{'questions':>11}"
        for level, hits in report["hits"].items():
            shares = "".join(f"{hits[f'hit@{k}']:>9.3f}" for k in (1, 3, 5, 10))
            yield f"{level:<10}{shares}{hits['questions']:>11}"
    if "dense_weight" in report:
        keyword = "  ".join(f"{name} {value:.4f}" for name, value in report["keyword_metrics"].items())
        yield f"dense weight {report['dense_weight']} (KB_DENSE_WEIGHT); keyword mode on the same queries: {keyword}"
    latency = report["latency_ms"]
    yield f"search latency p50 {latency['p50']:.1f} ms, p95 {latency['p95']:.1f} ms"


def main() -> None:
    cli(prog_name="kb")


if __name__ == "__main__":
    main()
