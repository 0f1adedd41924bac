"""What every `kb` command shares: the group, settings, opening the knowledge base, errors, the actor.

Output meant for scripts (`--json`, `--batch`, the `ok|unchanged|failed NAME: reason` lines of
`kb ingest`) goes to stdout; progress bars, warnings and the mode line go to stderr.

Errors people can act on are kb.errors.KbError (and OSError from the data directory): `KbGroup`
catches them once, for every command, and prints one line with the error's exit code (2 for a bad
setting), instead of a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import click

from kb.auth import LOCAL_ADMIN, Actor, actor_for
from kb.config import Settings, load_settings
from kb.errors import KbError, first_line
from kb.records import Passage
from kb.service import KnowledgeBase


class KbGroup(click.Group):
    """The `kb` group: turns a KbError or OSError raised by any command into one line and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KbError as exc:
            _fail(ctx, first_line(exc), exc.exit_code)
        except OSError as exc:  # a full disk, a read-only data directory
            _fail(ctx, first_line(exc), 1)


def _fail(ctx: click.Context, message: str, exit_code: int) -> NoReturn:
    click.echo(f"Error: {message}", err=True)  # as click shows its own errors
    ctx.exit(exit_code)


@click.group(cls=KbGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--data-dir", type=click.Path(path_type=Path), help="Data directory (default: KB_DATA_DIR).")
@click.option("-v", "--verbose", is_flag=True, help="Log what happens inside.")
@click.version_option(package_name="kb")
@click.pass_context
def cli(ctx: click.Context, data_dir: Path | None, verbose: bool) -> None:
    """kb: ask questions of your company's files and see the passages each answer comes from."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    ctx.obj = {"data_dir": data_dir}


def settings_of(ctx: click.Context) -> Settings:
    """The validated settings (environment, secrets file, --data-dir), loaded once per command."""
    root = ctx.find_root()
    if "settings" not in root.obj:
        root.obj["settings"] = load_settings(data_dir=root.obj["data_dir"])
    return root.obj["settings"]


@contextmanager
def open_kb(ctx: click.Context, *, worker: bool = False, index: bool = True) -> Iterator[KnowledgeBase]:
    """The knowledge base, closed afterwards. `worker`: take the queue if free (commands that change
    the index); `index=False`: the catalog alone, which works while the app holds the index."""
    kb = KnowledgeBase(settings_of(ctx))
    try:
        if worker:
            kb.take_queue()
        elif index:
            kb.open_index()
        if index:
            for warning in kb.warnings:
                click.echo(f"warning: {warning}", err=True)
        yield kb
    finally:
        kb.close()


USER_OPTION = click.option(
    "--user", default=None,
    help="Answer as this user (e-mail or name): only documents of their groups (KB_USER_GROUPS). "
    "Default: the machine owner, who sees everything.",
)


def actor_of(kb: KnowledgeBase, user: str | None) -> Actor:
    return LOCAL_ADMIN if user is None else actor_for(user, kb.settings)


def say_mode(kb: KnowledgeBase) -> None:
    """One line on stderr saying how the answer was found, so nobody mistakes keyword search for more."""
    click.echo(f"[{kb.modes().describe()}]", err=True)


def where(passage: Passage) -> str:
    """", p. 3" or ", pp. 3–4, match on p. 4" after a file name ("" without pages)."""
    label = passage.page_label()
    return f", {label}" if label else ""
