"""The parse helper process, `python -m kb.parsing.helper MEMORY_MB`, started and fed by `ParseSandbox`.

It answers requests (kb.parsing.protocol) on stdin/stdout until the caller closes the pipe, under an
address-space cap of MEMORY_MB. The protocol owns the real stdout: `main` moves it aside and points file
descriptor 1 at stderr before the parsers are imported, so anything a library prints goes to stderr. What
runs before that (`python -m` imports `kb` and `kb.parsing` first) must never print.
"""

from __future__ import annotations

import os
import resource
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO

from kb.parsing.protocol import Request, batches, read_message, write_message
from kb.records import ParsedFile, ParseError

ParseFile = Callable[..., ParsedFile]


def serve(requests: IO[bytes], replies: IO[bytes], memory_mb: int) -> None:
    """Answer requests until the caller closes the pipe."""
    from kb.parsing.parse import parse_file
    from kb.pipeline import release_memory

    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    while True:
        try:
            request: Request = read_message(requests)
        except EOFError:
            return
        try:
            answer(request, replies, parse_file, memory_mb)
        except BrokenPipeError:  # the caller went away
            return
        release_memory()  # the next file may be small: do not sit on this one's memory meanwhile


def answer(request: Request, replies: IO[bytes], parse_file: ParseFile, memory_mb: int) -> None:
    """One file: an error, or the header, the batches of elements and the end mark."""
    reason: str | None
    try:
        parsed = parse_file(Path(request.path), filename=request.filename, max_bytes=request.max_bytes)
    except ParseError as exc:
        reason = exc.reason
    except MemoryError:
        reason = f"the file could not be read within {memory_mb} MB of memory; it may be hostile"
    else:
        reason = None
    if reason is not None:  # sent after the except block: its traceback holds the parser's memory until then
        write_message(replies, ("error", reason))
        return
    write_message(replies, ("info", parsed.pages, parsed.title, len(parsed.elements), parsed.date))
    for batch in batches(parsed.elements, request.batch_elements, request.batch_chars):
        write_message(replies, ("batch", batch))
    write_message(replies, ("end",))


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the caller's to handle; it closes the pipe
    # The protocol owns the real stdout; anything a library prints goes to stderr instead.
    protocol_out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    serve(sys.stdin.buffer, protocol_out, int(sys.argv[1]))


if __name__ == "__main__":
    main()
