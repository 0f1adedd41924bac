"""Running the Streamlit app under AppTest with its own data directory and configuration.

The app keeps one KnowledgeBase per process in `st.cache_resource`; `app_environment` clears that
cache on the way in and out, so each test module gets a fresh app over its own data, exactly as a
restart would. The test and the app share the same cached object, so a test can look at the
catalog and the index the pages use.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from kb.service import KnowledgeBase

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "streamlit_app.py"
if str(ROOT) not in sys.path:  # the pages import `app_pages.common` from the repository root
    sys.path.insert(0, str(ROOT))

from app_pages.common import knowledge_base  # noqa: E402

CONFIG_NAMES = (
    "OPENAI_API_KEY", "OPENAI_BASE_URL", "KB_LLM_MODEL", "KB_EMBEDDING", "KB_QDRANT_URL",
    "KB_ADMIN_PASSWORD", "KB_ADMIN_EMAILS", "KB_CHUNK_WORDS",
)

LEAVE = """# Leave policy

## Requesting leave

To request annual leave, submit a request in the HR portal at least two weeks in advance.
Your manager approves or declines the request within three working days.

## Part-time staff

Part-time staff accrue annual leave in proportion to their contracted hours.
"""

TRAVEL = """# Travel policy

Book all business travel through the travel desk. Keep every receipt: expenses are reimbursed
within 30 days of submitting the claim.
"""

# A passage written to attack the page: a script, a tracking image, a link and raw HTML.
HOSTILE = (
    "Overtime requests: <script>window.kbPwned=1</script> ![tracker](http://evil.example/pixel.png) "
    "[click here](javascript:alert(1)) <img src=x onerror=alert(1)> <b>approve</b> overtime requests "
    "with your supervisor before working overtime.\n"
)


@contextmanager
def app_environment(root: Path, **env: str) -> Iterator[KnowledgeBase]:
    """Configure the app through the environment (nothing else), start it, stop it afterwards."""
    with pytest.MonkeyPatch.context() as patch:
        for name in CONFIG_NAMES:
            patch.delenv(name, raising=False)
        patch.setenv("KB_DATA_DIR", str(root / "data"))
        for name, value in env.items():
            patch.setenv(name, value)
        patch.chdir(root)  # no .streamlit/secrets.toml from the developer's checkout
        st.cache_resource.clear()
        try:
            yield knowledge_base()
        finally:
            st.cache_resource.clear()  # stops the worker and closes the index


def restart() -> KnowledgeBase:
    """Stop the app's knowledge base and start it again, reading the environment again."""
    st.cache_resource.clear()
    return knowledge_base()


def wait_for_jobs(kb: KnowledgeBase, job_ids: list[int], timeout_s: float = 120.0) -> None:
    """Wait until the app's background worker has finished these jobs."""
    deadline = time.monotonic() + timeout_s
    while any(job.status != "done" for job in kb.catalog.jobs(job_ids)):
        assert time.monotonic() < deadline, f"jobs {job_ids} not done after {timeout_s} s"
        time.sleep(0.1)


def add_documents(kb: KnowledgeBase, folder: Path, files: dict[str, str | bytes]) -> None:
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    submitted = kb.submit_paths([folder / name for name in files])
    wait_for_jobs(kb, [s.job_id for s in submitted])
    for job in kb.catalog.jobs([s.job_id for s in submitted]):
        assert job.outcome == "ok", (job.name, job.message)


def new_app(page: str | None = None) -> AppTest:
    app = AppTest.from_file(str(APP), default_timeout=60)
    app.run()
    assert not app.exception, app.exception
    if page:
        app.switch_page(page).run()
        assert not app.exception, app.exception
    return app


def plain(markdown: str) -> str:
    """Text escaped by kb.highlight.markdown_literal, as a reader sees it."""
    return re.sub(r"\\(.)", r"\1", markdown).replace("\u2060", "")


def html_of(app: AppTest) -> str:
    return "\n".join(element.value for element in app.html)
