"""Fixtures shared by several test files."""

import os
from collections.abc import Iterator

import pytest

from fake_openai import FakeOpenAI


@pytest.fixture(autouse=True)
def no_secrets_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's own .streamlit/secrets.toml never reaches a test (KB_SECRETS_FILE=/dev/null: none)."""
    monkeypatch.setenv("KB_SECRETS_FILE", os.devnull)


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    """A running OpenAI-compatible server on 127.0.0.1 (see tests/fake_openai.py)."""
    server = FakeOpenAI().start()
    yield server
    server.stop()
