"""Parsing in the helper process: same results as in-process, and hostile files cost only the helper."""

import gc
import io
import os
import signal
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path

import pytest

from kb.parsing import FileInfo, ParseSandbox, parse_file
from kb.parsing.helper import answer
from kb.parsing.protocol import Request, batches, read_message
from kb.records import Element, ParseError


@pytest.fixture()
def note(tmp_path: Path) -> Path:
    path = tmp_path / "note.md"
    path.write_text("# Leave\n\nAnnual leave is requested in the HR portal.\n")
    return path


def test_same_result_as_parsing_in_process(note: Path):
    sandbox = ParseSandbox(timeout_s=60)
    try:
        assert sandbox.parse(note, "note.md") == parse_file(note, "note.md")
        with pytest.raises(ParseError, match="file is empty"):
            empty = note.with_name("empty.txt")
            empty.write_bytes(b"")
            sandbox.parse(empty)
    finally:
        sandbox.close()


def test_a_file_over_the_time_limit_fails_and_the_next_one_works(note: Path):
    sandbox = ParseSandbox(timeout_s=0.001)
    try:
        with pytest.raises(ParseError, match="took longer than 0.001 s"):
            sandbox.parse(note)
        sandbox.timeout_s = 60
        assert sandbox.parse(note).title == "Leave"
    finally:
        sandbox.close()


def test_a_file_over_the_memory_cap_fails_and_the_next_one_works(note: Path, tmp_path: Path):
    big = tmp_path / "big.txt"
    with big.open("w") as out:  # 120 MB of text: bytes, decoded text and elements need far more than the cap
        line = "lorem ipsum dolor sit amet " * 40 + "\n"
        for _ in range(120 * 1024 * 1024 // len(line)):
            out.write(line)
    sandbox = ParseSandbox(timeout_s=120, memory_mb=700)
    try:
        with pytest.raises(ParseError, match="memory"):
            sandbox.parse(big)
        assert sandbox.parse(note).title == "Leave"
    finally:
        sandbox.close()


def test_a_helper_that_died_is_replaced(note: Path):
    sandbox = ParseSandbox(timeout_s=60)
    try:
        sandbox.parse(note)
        assert sandbox._helper is not None
        sandbox._helper.kill()
        sandbox._helper.wait()
        assert sandbox.parse(note).title == "Leave"
    finally:
        sandbox.close()


# --- a parsed file in pieces ----------------------------------------------------------------------


@pytest.fixture()
def long_text(tmp_path: Path) -> Path:
    """About 1 MB in 2500 paragraphs: far more than a pipe holds, so the helper must wait for the reader."""
    words = ["leave", "policy", "employee", "manager", "approval", "days", "travel", "budget", "team", "office"]
    paragraphs = [f"Paragraph {i}. " + " ".join(words[(i + j) % 10] for j in range(60)) + "." for i in range(2500)]
    path = tmp_path / "long.txt"
    path.write_text("\n\n".join(paragraphs))
    return path


def test_batches_are_bounded_in_count_and_characters():
    elements = [Element("x" * size) for size in (10, 10, 10, 500, 10, 2000, 10)]
    sizes = [[len(e.text) for e in batch] for batch in batches(elements, max_elements=2, max_chars=600)]
    assert sizes == [[10, 10], [10, 500], [10], [2000], [10]]  # an element longer than the bound goes alone
    assert [e for batch in batches(elements, 3, 10**6) for e in batch] == elements


def test_a_stream_gives_the_header_first_then_every_element_in_order(long_text: Path):
    sandbox = ParseSandbox(timeout_s=60)
    sandbox.batch_elements = 7
    try:
        expected = parse_file(long_text)
        with sandbox.parse_stream(long_text) as stream:
            assert stream.info == FileInfo(pages=expected.pages, title=expected.title, elements=len(expected.elements))
            assert list(stream) == expected.elements
        assert sandbox.parse(long_text) == expected  # the helper serves the next file
    finally:
        sandbox.close()


def test_a_slow_reader_is_not_timed_out(long_text: Path):
    """The time limit is for the helper's parsing and for each piece, not for the reader's work."""
    sandbox = ParseSandbox(timeout_s=60)
    sandbox.batch_elements = 250
    try:
        with sandbox.parse_stream(long_text) as stream:
            sandbox.timeout_s = 0.5
            count = 0
            for count, _ in enumerate(stream, start=1):
                if count % 250 == 0:
                    time.sleep(0.1)  # 10 batches: 1 s of work, twice the limit
        assert count == stream.info.elements == 2500
    finally:
        sandbox.close()


def test_closing_a_stream_early_frees_the_sandbox_for_the_next_file(long_text: Path, note: Path):
    sandbox = ParseSandbox(timeout_s=60)
    sandbox.batch_elements = 5
    try:
        with sandbox.parse_stream(long_text) as stream:
            first = [element for _, element in zip(range(12), stream)]
        assert len(first) == 12
        assert sandbox.parse(note).title == "Leave"  # a fresh helper: the old one was halfway through

        unread = sandbox.parse_stream(long_text)
        del unread  # dropped without reading or closing: must not keep the sandbox
        assert sandbox.parse(note).title == "Leave"
    finally:
        sandbox.close()


def test_a_helper_that_stalls_midway_is_timed_out_and_replaced(long_text: Path, note: Path):
    sandbox = ParseSandbox(timeout_s=60)
    sandbox.batch_elements = 10
    try:
        stream = sandbox.parse_stream(long_text)
        os.kill(sandbox._helper.pid, signal.SIGSTOP)  # it stops with most of the file still unsent
        sandbox.timeout_s = 0.5
        with pytest.raises(ParseError, match="stopped answering for 0.5 s"):
            list(stream)
        sandbox.timeout_s = 60
        assert sandbox.parse(note).title == "Leave"
    finally:
        sandbox.close()


def test_a_helper_that_dies_midway_fails_the_file_and_is_replaced(long_text: Path, note: Path):
    sandbox = ParseSandbox(timeout_s=60)
    sandbox.batch_elements = 10
    try:
        stream = sandbox.parse_stream(long_text)
        next(iter(stream))
        sandbox._helper.kill()
        with pytest.raises(ParseError, match="the reader crashed on this file"):
            list(stream)
        assert sandbox.parse(note).title == "Leave"
    finally:
        sandbox.close()


def test_one_file_at_a_time_while_a_stream_is_open(long_text: Path, note: Path):
    sandbox = ParseSandbox(timeout_s=60)
    try:
        stream = sandbox.parse_stream(long_text)
        with pytest.raises(RuntimeError, match="still reading a parsed file"):
            sandbox.parse(note)  # the same thread would wait for itself forever
        results: list = []
        other = threading.Thread(target=lambda: results.append(sandbox.parse(note).title))
        other.start()
        other.join(timeout=1.0)
        assert other.is_alive() and results == []  # waits for the open stream
        assert len(list(stream)) == stream.info.elements
        other.join(timeout=60)
        assert results == ["Leave"]
    finally:
        sandbox.close()


def test_closing_the_sandbox_stops_a_stream_being_read(long_text: Path):
    sandbox = ParseSandbox(timeout_s=60)
    sandbox.batch_elements = 10
    stream = sandbox.parse_stream(long_text)
    next(iter(stream))
    sandbox.close()  # does not wait for the reader
    with pytest.raises(ParseError, match="knowledge base is closing"):
        list(stream)
    sandbox.close()


def test_a_file_that_runs_out_of_memory_is_answered_after_the_parsers_memory_is_freed():
    """The helper is at its memory cap when a parser gives up: it must let go of the parser's data (held by
    the exception's traceback) before it writes the answer, or writing it fails too and the helper crashes."""

    class Held:
        pass

    alive: list[weakref.ref] = []

    def parse_file(path, filename=None, max_bytes=None):
        elements = Held()  # what a partitioner holds when memory runs out
        alive.append(weakref.ref(elements))
        try:
            raise MemoryError
        except MemoryError as exc:
            raise ParseError("file is too large to read into memory") from exc

    class Replies(io.BytesIO):
        def write(self, data):
            gc.collect()
            assert alive[0]() is None, "the parser's data is still held while the answer is written"
            return super().write(data)

    replies = Replies()
    answer(Request("x.txt", None, None), replies, parse_file, memory_mb=700)
    replies.seek(0)
    assert read_message(replies) == ("error", "file is too large to read into memory")


def test_the_helper_writes_nothing_to_its_stdout_but_the_protocol():
    """`python -m kb.parsing.helper` imports kb.parsing before it moves stdout aside for the protocol: a print
    there would be read as a message length. With no request it exits cleanly, having written nothing."""
    helper = subprocess.run(
        [sys.executable, "-m", "kb.parsing.helper", "2048"], stdin=subprocess.DEVNULL, capture_output=True, timeout=60
    )
    assert (helper.returncode, helper.stdout) == (0, b"")


def test_a_helper_answering_in_another_protocol_fails_the_file_and_frees_the_sandbox(note: Path, monkeypatch):
    """A helper of another kb version (a checkout's CLI starting the installed helper) sends a shorter header."""
    sandbox = ParseSandbox(timeout_s=60)
    try:
        real_ask = ParseSandbox._ask
        monkeypatch.setattr(ParseSandbox, "_ask", lambda self, request: (self._running_helper(), ("info", 1, "x", 2)))
        with pytest.raises(ParseError, match="unreadable"):
            sandbox.parse(note)
        monkeypatch.setattr(ParseSandbox, "_ask", real_ask)
        assert sandbox.parse(note).title == "Leave"  # not locked: the next file is read
    finally:
        sandbox.close()
