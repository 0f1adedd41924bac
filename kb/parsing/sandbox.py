"""Parse files in a separate helper process with a time limit and a memory cap.

Hostile files (zip bombs, XML entity expansion, PDF decompression bombs, reference loops) can make a
parser run forever, eat all memory or crash. `ParseSandbox` hands each file to a helper process
(`python -m kb.parsing.helper`) that has imported the parsers once and runs under an address-space cap, so a
file that needs too much memory fails with MemoryError there instead of taking the app down. A file
that takes too long, or crashes the helper, costs only the helper: it is killed and started again for
the next file, and the file is reported with a plain reason.

The helper answers in pieces, so the caller never holds more of a big file than it is working on: a
header (pages, title, number of elements, date: what is known only once the whole file is parsed), then
batches of elements bounded in count and characters, then an end mark. Each piece is a length-prefixed
pickle read straight from the pipe's file descriptor, so the time limit applies to every piece and no
buffered reader can hide data from `select`. `parse_stream` returns them as a `ParseStream` that holds
the helper (one file at a time) until it is read to the end or closed; closing it early kills the
helper, which is started again for the next file.
"""

from __future__ import annotations

import os
import pickle
import select
import subprocess
import sys
import threading
import time
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from kb.parsing.protocol import BATCH_CHARS, BATCH_ELEMENTS, LENGTH_BYTES, MAX_MESSAGE_BYTES, Request, write_message
from kb.records import Element, ParsedFile, ParseError

FILES_PER_HELPER = 500  # start a fresh helper now and then, so fragmentation never accumulates


@dataclass(frozen=True)
class FileInfo:
    """What is known about a parsed file as a whole, sent before its elements."""

    pages: int | None  # number of pages when the format has pages
    title: str | None  # the document's own title (ParsedFile.title)
    elements: int  # how many elements will follow
    date: str | None = None  # the document's own date (ParsedFile.date)


class _Timeout(Exception):
    pass


class ParseSandbox:
    """The caller's side: send a file to the helper process, get its elements or a ParseError back."""

    def __init__(self, timeout_s: float = 120.0, memory_mb: int = 2048):
        self.timeout_s = timeout_s
        self.memory_mb = memory_mb
        self.batch_elements = BATCH_ELEMENTS
        self.batch_chars = BATCH_CHARS
        self._lock = threading.Lock()  # one file at a time through the pipe, from request to end mark
        self._holder: int | None = None  # the thread reading a file now
        self._helper: subprocess.Popen[bytes] | None = None
        self._served = 0
        self._closing = False  # close() stopped the helper under a file being read

    def parse(self, path: Path, filename: str | None = None, max_bytes: int | None = None) -> ParsedFile:
        """The whole parsed file at once (small files, tests); big ones go through `parse_stream`."""
        with self.parse_stream(path, filename, max_bytes) as stream:
            elements = list(stream)
        info = stream.info
        return ParsedFile(elements=elements, pages=info.pages, title=info.title, date=info.date)

    def parse_stream(self, path: Path, filename: str | None = None, max_bytes: int | None = None) -> ParseStream:
        """Parse the file in the helper; returns once it is parsed (ParseError if it cannot be), with its
        FileInfo and its elements to read batch by batch. Read it to the end or close it (`with`): until
        then the helper serves nobody else."""
        if self._holder == threading.get_ident():
            raise RuntimeError("this thread is still reading a parsed file; close that stream first")
        self._lock.acquire()
        self._holder = threading.get_ident()
        request = Request(str(path), filename, max_bytes, self.batch_elements, self.batch_chars)
        try:
            helper, first = self._ask(request)
        except BaseException:
            self._release()
            raise
        if first[0] == "error":
            self._done_with_file()
            self._release()
            raise ParseError(first[1])
        if first[0] != "info" or len(first) != 5:  # e.g. a helper from another version of kb
            self._stop_helper(helper)
            self._release()
            raise ParseError("the reader answered something unreadable")
        _, pages, title, count, date = first
        return ParseStream(self, helper, FileInfo(pages=pages, title=title, elements=count, date=date))

    def _ask(self, request: Request) -> tuple[subprocess.Popen[bytes], tuple[Any, ...]]:
        """Send the request; the helper's first answer, once it has parsed the file."""
        for attempt in range(2):
            helper = self._running_helper()
            assert helper.stdin is not None
            try:
                write_message(helper.stdin, request)
                break
            except BrokenPipeError:  # it died since the last file: start another and try once more
                self._stop_helper()
                if attempt:
                    raise ParseError("the reader could not be started") from None
        try:
            return helper, self._receive(helper)
        except _Timeout:
            self._stop_helper()
            raise ParseError(
                f"reading the file took longer than {self.timeout_s:g} s; it may be damaged or hostile"
            ) from None

    def _receive(self, helper: subprocess.Popen[bytes]) -> tuple[Any, ...]:
        """The helper's next message within the time limit; ParseError when it crashed, _Timeout when late."""
        assert helper.stdout is not None
        deadline = time.monotonic() + self.timeout_s
        try:
            fd = helper.stdout.fileno()
            size = int.from_bytes(_read_exact(fd, LENGTH_BYTES, deadline), "big")
            if size > MAX_MESSAGE_BYTES:
                raise EOFError
            message = pickle.loads(_read_exact(fd, size, deadline))
        except (EOFError, OSError, ValueError, pickle.UnpicklingError):
            self._stop_helper(helper)
            if self._closing:
                raise ParseError("the reader was stopped: the knowledge base is closing") from None
            raise ParseError(
                f"the reader crashed on this file; it may be damaged or need more than {self.memory_mb} MB of memory"
            ) from None
        if not isinstance(message, tuple) or not message:
            self._stop_helper(helper)
            raise ParseError("the reader answered something unreadable")
        return message

    def _done_with_file(self) -> None:
        """A file's exchange ended cleanly; a helper that served many files makes way for a fresh one."""
        self._served += 1
        if self._served >= FILES_PER_HELPER:
            self._stop_helper()

    def _release(self) -> None:
        self._holder = None
        self._lock.release()

    def _running_helper(self) -> subprocess.Popen[bytes]:
        if self._helper is None or self._helper.poll() is not None:
            self._helper = subprocess.Popen(
                [sys.executable, "-m", "kb.parsing.helper", str(self.memory_mb)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                bufsize=0,
            )
            self._served = 0
            self._closing = False
        return self._helper

    def _stop_helper(self, helper: subprocess.Popen[bytes] | None = None) -> None:
        """Kill `helper` (default: the current one); the next file starts a fresh one."""
        helper = helper or self._helper
        if helper is None:
            return
        if helper is self._helper:
            self._helper = None
        try:
            helper.kill()
        except ProcessLookupError:
            pass
        helper.wait()
        for pipe in (helper.stdin, helper.stdout):
            if pipe is not None:
                pipe.close()

    def close(self) -> None:
        """Stop the helper. A file being read meanwhile fails with a ParseError instead of being waited for."""
        if self._lock.acquire(blocking=False):
            try:
                self._stop_helper()
            finally:
                self._lock.release()
        elif (helper := self._helper) is not None:
            self._closing = True
            helper.kill()  # the reader sees the pipe end and cleans up


class ParseStream:
    """One parsed file: `info` now, the elements by iterating, batch by batch as the helper sends them.

    Holds the sandbox until the last element was read or `close()` is called (a `with` block does it, and
    so does dropping the stream); closing early kills the helper, since it cannot be told to stop midway.
    A crash or a stall of the helper while the elements are read raises ParseError from the iteration.
    """

    def __init__(self, sandbox: ParseSandbox, helper: subprocess.Popen[bytes], info: FileInfo):
        self.info = info
        self._file = _OpenFile(sandbox, helper)
        self._elements = _read(self._file)  # refers to the open file, not to this stream, so dropping it ends it

    def __iter__(self) -> ParseStream:
        return self

    def __next__(self) -> Element:
        return next(self._elements)

    def close(self) -> None:
        """Let go of the helper (killing it if elements are still unread). Safe to call twice."""
        self._elements.close()
        self._file.finish(clean=False)

    def __enter__(self) -> ParseStream:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __del__(self) -> None:  # a stream dropped unread must not keep the sandbox locked
        if hasattr(self, "_file"):
            try:
                self.close()
            except Exception:  # at interpreter exit the helper may already be gone
                pass


class _OpenFile:
    """A file the helper is sending: who sends it, and whether the sandbox is still held for it."""

    def __init__(self, sandbox: ParseSandbox, helper: subprocess.Popen[bytes]):
        self.sandbox = sandbox
        self.helper = helper
        self.open = True

    def finish(self, clean: bool) -> None:
        if not self.open:
            return
        self.open = False
        if clean:
            self.sandbox._done_with_file()
        else:  # it may be halfway through sending: the pipe holds the rest, so start afresh
            self.sandbox._stop_helper(self.helper)
        self.sandbox._release()


def _read(file: _OpenFile) -> Generator[Element, None, None]:
    sandbox = file.sandbox
    try:
        while True:
            try:
                message = sandbox._receive(file.helper)
            except _Timeout:
                sandbox._stop_helper(file.helper)
                raise ParseError(
                    f"the reader stopped answering for {sandbox.timeout_s:g} s while sending this file"
                ) from None
            if message[0] == "batch":
                yield from message[1]
            elif message[0] == "end":
                file.finish(clean=True)
                return
            else:
                sandbox._stop_helper(file.helper)
                raise ParseError("the reader answered something unreadable")
    finally:
        file.finish(clean=False)


def _read_exact(fd: int, size: int, deadline: float) -> bytes:
    """Exactly `size` bytes from a pipe, or _Timeout at `deadline`, EOFError when it closes first."""
    buffer = bytearray()
    while len(buffer) < size:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            raise _Timeout
        data = os.read(fd, min(size - len(buffer), 1 << 20))
        if not data:
            raise EOFError
        buffer += data
    return bytes(buffer)
