"""Parsing in the helper process: same results as in-process, and hostile files cost only the helper."""

from pathlib import Path

import pytest

from kb.parsing import parse_file
from kb.records import ParseError
from kb.sandbox import ParseSandbox


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
