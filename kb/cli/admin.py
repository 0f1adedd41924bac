"""Admin commands: `kb reindex`, `stats`, `worker` and `eval`."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from kb.auth import LOCAL_ADMIN
from kb.cli.base import cli, open_kb, settings_of
from kb.cli.documents import run_job


@cli.command()
@click.pass_context
def reindex(ctx: click.Context) -> None:
    """Rebuild the index from the stored originals; the new one replaces the old only when complete."""
    with open_kb(ctx, worker=True) as kb:
        job = run_job(kb, kb.submit_reindex(LOCAL_ADMIN), "re-index")
    click.echo(f"{job.outcome}: {job.message}")
    sys.exit(0 if job.outcome == "ok" else 1)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def stats(ctx: click.Context, as_json: bool) -> None:
    """Show index statistics: documents, chunks, size, models, last re-index."""
    with open_kb(ctx) as kb:
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
    with open_kb(ctx, worker=True) as kb:
        if not kb.take_queue():
            raise click.ClickException("another kb process is already working the queue")
        click.echo(f"Working the queue in {kb.settings.data_dir} (Ctrl-C to stop).", err=True)
        try:
            while True:
                kb.run_scheduled()
                kb.work_queue(on_done=lambda job: click.echo(f"{job.outcome} {job.kind} {job.name}: {job.message}"))
                time.sleep(poll)
        except KeyboardInterrupt:
            pass


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
    from kb.evaluation import evaluate_beir, evaluate_questions

    settings = settings_of(ctx)
    say = (lambda message: click.echo(f"{message} ...", err=True)) if not as_json else None
    if dataset.is_dir():
        if files is not None:
            raise click.UsageError("--files goes with a questions JSONL, not with a BEIR folder")
        report = evaluate_beir(dataset, settings, mode, split, progress=say)  # type: ignore[arg-type]
    else:
        if files is None:
            raise click.UsageError("a questions file needs --files FOLDER (the files it asks about)")
        report = evaluate_questions(dataset, files, settings, mode, progress=say)  # type: ignore[arg-type]
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
