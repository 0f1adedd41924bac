"""Reading commands: `kb search` and `kb ask`."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any, get_args

import click

from kb.cli.base import USER_OPTION, actor_of, cli, open_kb, say_mode, where
from kb.audit import FeedbackFilter, audit_csv, audit_json
from kb.records import Answer, Passage
from kb.sentences import split_sentences


def passage_json(passage: Passage) -> dict[str, Any]:
    chunk = passage.chunk
    return {
        "rank": passage.rank,
        "score": round(passage.score, 6),
        "doc_id": chunk.doc_id,
        "chunk_id": chunk.chunk_id,
        "source": chunk.source,
        "page": passage.page,
        "pages": list(passage.pages) if passage.pages else None,
        "text": chunk.text,
    }


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
    with open_kb(ctx) as kb:
        if batch is not None:
            actor = actor_of(kb, user)
            for qid, text in batch_items(batch):
                results = [passage_json(p) for p in kb.search(text, k=k, actor=actor)]
                click.echo(json.dumps({"id": qid, "results": results}, ensure_ascii=False))
            return
        passages = kb.search(query or "", k=k, actor=actor_of(kb, user))
        say_mode(kb)
        if as_json:
            click.echo(json.dumps([passage_json(p) for p in passages], ensure_ascii=False, indent=2))
            return
        if not passages:
            click.echo("No matching passages.")
        for p in passages:
            click.echo(f"{p.rank}. {p.chunk.source}{where(p)}  (score {p.score:.3f})")
            click.echo("   " + _excerpt(p.chunk.text))


def batch_items(lines: Iterable[str]) -> Iterator[tuple[Any, str]]:
    """(id, query) of each non-blank line of a `--batch` file of {"id", "query"} JSON lines."""
    for line_no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            yield item["id"], str(item["query"])
        except (ValueError, KeyError, TypeError) as exc:
            raise click.ClickException(f"line {line_no} of the batch file is not {{'id', 'query'}} JSON") from exc


def _excerpt(text: str, width: int = 240) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def answer_json(answer: Answer) -> dict[str, Any]:
    return {
        "answer": answer.text,
        "mode": answer.mode,
        "found": answer.found,
        "citations": [
            {
                "n": c.n,
                "doc_id": c.passage.chunk.doc_id,
                "chunk_id": c.passage.chunk.chunk_id,
                "source": c.passage.chunk.source,
                "page": c.passage.page,
                "pages": list(c.passage.pages) if c.passage.pages else None,
                "text": c.passage.chunk.text,
                "score": round(c.passage.score, 6),
            }
            for c in answer.citations
        ],
        "claims": [
            {"text": c.text, "cited": list(c.cited), "supported": c.supported, "reason": c.reason}
            for c in answer.claims
        ],
    }


@cli.command()
@click.argument("question", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--batch", type=click.File("r"), help='JSONL file of {"id": ..., "query": ...}; prints JSONL.')
@USER_OPTION
@click.pass_context
def ask(ctx: click.Context, question: str | None, as_json: bool, batch: Any, user: str | None) -> None:
    """Answer QUESTION from the documents, citing the passages used."""
    if (question is None) == (batch is None):
        raise click.UsageError("give a QUESTION or --batch FILE (one of them)")
    with open_kb(ctx) as kb:
        if batch is not None:  # one process for many questions: the index is opened once
            actor = actor_of(kb, user)
            for qid, text in batch_items(batch):
                click.echo(json.dumps({"id": qid, **answer_json(kb.ask(text, actor=actor))}, ensure_ascii=False))
            return
        actor = actor_of(kb, user)
        answer = kb.ask(question or "", actor=actor)
        kb.record_answer(actor, question or "", question or "", answer)  # the audit log (a batch is not kept)
        say_mode(kb)
        if as_json:
            click.echo(json.dumps(answer_json(answer), ensure_ascii=False, indent=2))
            return
        click.echo(answer.text)
        if answer.citations:
            click.echo()
        for c in answer.citations:
            click.echo(f"[{c.n}] {c.passage.chunk.source}{where(c.passage)}: {_excerpt(c.passage.chunk.text, 160)}")
        if not answer.found and answer.passages:
            click.echo("\nClosest passages:")
            for p in answer.passages[:3]:
                click.echo(f"- {p.chunk.source}{where(p)}: {_excerpt(p.chunk.text, 160)}")


@cli.command()
@click.argument("chunk_id")
@click.option("--png", "png", type=click.Path(dir_okay=False, writable=True), help="Write the passage's PDF page, highlighted, to this PNG file.")
@click.option("--page", type=click.IntRange(1), help="With --png: draw this page instead of the passage's first.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@USER_OPTION
@click.pass_context
def show(ctx: click.Context, chunk_id: str, png: str | None, page: int | None, as_json: bool, user: str | None) -> None:
    """The passage CHUNK_ID (from `kb search --json`) with its document, version, pages and place."""
    with open_kb(ctx) as kb:
        actor = actor_of(kb, user)
        shown = kb.show(chunk_id, actor=actor)
        chunk, doc = shown.chunk, shown.document
        drawn = None
        if png:
            drawn = kb.render_page(chunk_id, page, split_sentences(chunk.text), actor=actor)
            with open(png, "wb") as out:
                out.write(drawn.png)
        if as_json:
            click.echo(json.dumps({
                "chunk_id": chunk.chunk_id, "doc_id": chunk.doc_id, "source": chunk.source, "version": chunk.version,
                "current_version": doc.version, "version_added": shown.version_added, "date": chunk.date,
                "pages": list(chunk.pages) if chunk.pages else None, "section": chunk.section,
                "headings": list(chunk.headings), "char_start": chunk.char_start, "char_end": chunk.char_end,
                "text": chunk.text,
                "png": None if drawn is None else {"file": png, "page": drawn.page, "pages": drawn.pages,
                                                   "width": drawn.width, "height": drawn.height,
                                                   "highlights": [list(box) for box in drawn.boxes]},
            }, ensure_ascii=False, indent=2))
            return
        label = f", {chunk.pages_label}" if chunk.pages_label else ""
        current = "" if shown.is_current else f" (version {doc.version} is current)"
        click.echo(f"{chunk.source}{label}, version {chunk.version}{current}" + (f" · § {chunk.section}" if chunk.section else ""))
        click.echo(chunk.text)
        if drawn is not None:
            click.echo(f"[page {drawn.page} of {drawn.pages} written to {png}, {len(drawn.boxes)} highlighted]", err=True)


@cli.command()
@click.option("--since", default="", help="Only answers from this date (YYYY-MM-DD) or time on.")
@click.option("--user", "of_user", default=None, help="Only the answers shown to this user.")
@click.option("--limit", type=click.IntRange(1), default=None, help="At most this many, newest first.")
@click.option("--document", "doc_id", default=None, help="Only the answers citing this document id.")
@click.option("--feedback", type=click.Choice(get_args(FeedbackFilter)), default="any", help="Only answers rated so.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines.")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV (cells defused for spreadsheets).")
@click.option("--as", "as_user", default=None, help="Read it as this user (it needs an admin); default: the machine owner.")
@click.pass_context
def audit(
    ctx: click.Context, since: str, of_user: str | None, limit: int | None, doc_id: str | None,
    feedback: FeedbackFilter, as_json: bool, as_csv: bool, as_user: str | None,
) -> None:
    """The answers shown (chat and `kb ask`), newest first, with their citations' versions (admins only)."""
    with open_kb(ctx) as kb:
        records = kb.audit(actor_of(kb, as_user), since=since, user=of_user, limit=limit, doc_id=doc_id,
                           feedback=feedback)
        if as_csv:
            click.echo(audit_csv(records), nl=False)
            return
        for record in records:
            if as_json:
                click.echo(json.dumps(audit_json(record), ensure_ascii=False))
                continue
            cited = ", ".join(f"[{c.n}] {c.chunk_id}" + (f" p. {c.page}" if c.page else "") for c in record.citations)
            rating = {1: " · 👍", -1: " · 👎"}.get(record.rating or 0, "")
            click.echo(f"{record.time}  {record.user}  {record.question!r}{rating}\n    {cited or 'no citation'}")
