"""Parse files in a separate helper process with a time limit and a memory cap.

Hostile files (zip bombs, XML entity expansion, PDF decompression bombs, reference loops) can make a
parser run forever, eat all memory or crash. `ParseSandbox` hands each file to a helper process
(`python -m kb.sandbox`) that has imported the parsers once and runs under an address-space cap, so a
file that needs too much memory fails with MemoryError there instead of taking the app down. A file
that takes too long, or crashes the helper, costs only the helper: it is killed and started again for
the next file, and the file is reported with a plain reason.
"""

from __future__ import annotations

import os
import pickle
import resource
import select
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from kb.records import ParsedFile, ParseError

FILES_PER_HELPER = 500  # start a fresh helper now and then, so fragmentation never accumulates


@dataclass(frozen=True)
class _Request:
    path: str
    filename: str | None
    max_bytes: int | None


class ParseSandbox:
    """The caller's side: send a file to the helper process, get a ParsedFile or a ParseError back."""

    def __init__(self, timeout_s: float = 120.0, memory_mb: int = 2048):
        self.timeout_s = timeout_s
        self.memory_mb = memory_mb
        self._lock = threading.Lock()  # one file at a time through the pipe
        self._helper: subprocess.Popen[bytes] | None = None
        self._served = 0

    def parse(self, path: Path, filename: str | None = None, max_bytes: int | None = None) -> ParsedFile:
        with self._lock:
            outcome = self._ask(_Request(str(path), filename, max_bytes))
        if isinstance(outcome, ParseError):
            raise outcome
        return outcome

    def _ask(self, request: _Request) -> ParsedFile | ParseError:
        helper = self._running_helper()
        assert helper.stdin is not None and helper.stdout is not None
        try:
            pickle.dump(request, helper.stdin)
            helper.stdin.flush()
        except BrokenPipeError:  # it died since the last file: start another and try once more
            self._stop_helper()
            return self._ask(request)
        if not _readable(helper.stdout, self.timeout_s):
            self._stop_helper()
            return ParseError(f"reading the file took longer than {self.timeout_s:g} s; it may be damaged or hostile")
        try:
            outcome = pickle.load(helper.stdout)
        except (EOFError, pickle.UnpicklingError):
            self._stop_helper()
            return ParseError(
                f"the reader crashed on this file; it may be damaged or need more than {self.memory_mb} MB of memory"
            )
        self._served += 1
        if self._served >= FILES_PER_HELPER:
            self._stop_helper()
        return outcome

    def _running_helper(self) -> subprocess.Popen[bytes]:
        if self._helper is None or self._helper.poll() is not None:
            self._helper = subprocess.Popen(
                [sys.executable, "-m", "kb.sandbox", str(self.memory_mb)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
            self._served = 0
        return self._helper

    def _stop_helper(self) -> None:
        if self._helper is not None:
            self._helper.kill()
            self._helper.wait()
            self._helper = None

    def close(self) -> None:
        with self._lock:
            self._stop_helper()


def _readable(stream: BinaryIO, timeout_s: float) -> bool:
    """Whether the helper starts answering before the timeout (it writes its whole answer at once)."""
    deadline = time.monotonic() + timeout_s
    while (remaining := deadline - time.monotonic()) > 0:
        if select.select([stream], [], [], remaining)[0]:
            return True
    return False


# ---- the helper process -------------------------------------------------------------------------


def _serve(requests: BinaryIO, replies: BinaryIO, memory_mb: int) -> None:
    """Answer requests until the caller closes the pipe."""
    from kb.parsing import parse_file

    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    while True:
        try:
            request: _Request = pickle.load(requests)
        except EOFError:
            return
        try:
            outcome: ParsedFile | ParseError = parse_file(
                Path(request.path), filename=request.filename, max_bytes=request.max_bytes
            )
        except ParseError as exc:
            outcome = ParseError(exc.reason)
        except MemoryError:
            outcome = ParseError(f"the file could not be read within {memory_mb} MB of memory; it may be hostile")
        pickle.dump(outcome, replies)
        replies.flush()


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the caller's to handle; it closes the pipe
    # The protocol owns the real stdout; anything a library prints goes to stderr instead.
    protocol_out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    _serve(sys.stdin.buffer, protocol_out, int(sys.argv[1]))
