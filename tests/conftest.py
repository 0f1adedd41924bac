"""Fixtures shared by several test files."""

from collections.abc import Iterator

import pytest

from fake_openai import FakeOpenAI


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    """A running OpenAI-compatible server on 127.0.0.1 (see tests/fake_openai.py)."""
    server = FakeOpenAI().start()
    yield server
    server.stop()
