"""The errors kb shows to people: one base, one line each.

Every error a user can cause or fix (a bad setting, a file that cannot be parsed, an index that is busy or
unreachable, an action the user may not take) is a `KbError`. Its message is one line that says what went
wrong and what to do; the CLI and the app catch `KbError` once and print or show that line. Anything else is
a bug and keeps its traceback.
"""

from __future__ import annotations


class KbError(Exception):
    """Base of every error shown to users as one line (`str(error)`)."""

    exit_code = 1

    def __init__(self, reason: str = ""):
        super().__init__(reason)
        self.reason = reason


class ConfigError(KbError, ValueError):
    """A setting with a value that cannot be used; the message names the variable."""

    exit_code = 2


class DataDirError(KbError, OSError):
    """The data directory cannot be used: its disk is full, it is read-only, or the catalog is unreadable.

    Also an OSError, so code that turns file errors into one line keeps doing so.
    """


class NotAuthorized(KbError, PermissionError):
    """The actor may not do this; the message says what was refused and why."""


class BadRequest(KbError, ValueError):
    """Input that cannot be used (a feedback rating out of range, an unreadable test set)."""


class ParseError(KbError):
    """A file that cannot be parsed; `reason` is one line a non-engineer understands."""


class IndexUnavailable(KbError):
    """The index cannot be reached or used."""


class IndexLocked(KbError):
    """Another process holds the embedded index open."""


class IndexBusy(KbError, RuntimeError):
    """Another process holds the embedded index; the message says which and what to do."""


class IndexWriteFailed(KbError):
    """The index refused a batch (full disk, unreachable server, a vector of the wrong size)."""


class EmbeddingUnavailable(KbError):
    """The configured dense model cannot be used; the message says why and what to do."""


class LlmUnavailable(KbError):
    """The configured language model cannot be reached or refused the request."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, or its type's name when it has none."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
