"""One real browser: `streamlit run` on a free port, driven by Debian's headless Chromium through
Playwright. Upload files, ask "How do I request annual leave?", see the cited passage card, and check
that a hostile file's text stays text. A second run with a slowly streaming LLM shows that the cards
come before the answer is finished. Screenshots go to the test's tmp dir.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from app_helpers import HOSTILE, LEAVE, ROOT
from kb.config import load_settings
from kb.service import KnowledgeBase

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
sync_playwright = pytest.importorskip(
    "playwright.sync_api", reason="Playwright is not installed (`make install` installs it)"
).sync_playwright
if CHROMIUM is None:
    pytest.skip(
        "no headless Chromium on this machine: `make test` installs Debian's `chromium` where apt-get is "
        "available; elsewhere install it and run again",
        allow_module_level=True,
    )

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
TIMEOUT_MS = 60_000
LLM_REPLY = ("Annual leave is requested in the HR portal, two weeks ahead, and your manager approves it [1]. "
             "Your manager replies within 5 days [1].")


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_app(root: Path, **env: str) -> Iterator[str]:
    """`streamlit run` with the repository's .streamlit/config.toml and a data dir under `root`."""
    (root / ".streamlit").mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / ".streamlit" / "config.toml", root / ".streamlit" / "config.toml")
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("KB_", "OPENAI_"))}
    with open(root / "streamlit.log", "w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(ROOT / "streamlit_app.py"),
             "--server.port", str(port), "--server.address", "127.0.0.1"],
            cwd=root, env={**clean, "KB_DATA_DIR": str(root / "data"), **env}, stdout=log, stderr=subprocess.STDOUT,
        )  # the child keeps its own copy of the log file open
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as reply:
                    if reply.read() == b"ok":
                        break
            except OSError:
                pass
            assert server.poll() is None, (root / "streamlit.log").read_text()
            assert time.monotonic() < deadline, "streamlit did not start within 60 s"
            time.sleep(0.3)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def ask(page, question: str) -> None:
    box = page.locator('[data-testid="stChatInputTextArea"]')
    box.fill(question)
    box.press("Enter")


def test_upload_ask_and_see_the_cited_passage_card(browser, tmp_path: Path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "leave.md").write_text(LEAVE)
    (docs / "overtime.txt").write_text(HOSTILE)
    with running_app(tmp_path) as url:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(url)
        page.get_by_text("No documents yet").wait_for()

        page.locator('[data-testid="stSidebarNavLink"]', has_text="Upload").click()
        page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(
            [str(docs / "leave.md"), str(docs / "overtime.txt")]
        )
        page.get_by_role("button", name="Add 2 files to the knowledge base").click()
        page.locator(".kb-jobs-summary", has_text="2 of 2 done").wait_for()
        assert page.locator(".kb-jobs-summary").inner_text() == "2 of 2 done"

        page.locator('[data-testid="stSidebarNavLink"]', has_text="Chat").click()
        ask(page, "How do I request annual leave?")
        card = page.locator(".kb-card", has_text="leave.md").first
        card.wait_for()
        answer = page.locator(".kb-answer").first
        assert "HR portal" in answer.inner_text()
        assert "[1]" in answer.inner_text() and card.locator(".kb-card-head").inner_text().startswith("[1] leave.md")
        assert card.locator("mark").count() > 0
        support = card.locator(".kb-support").first  # the supporting sentence, highlighted and in sight
        assert "HR portal" in support.inner_text() and support.is_visible()
        assert card.locator(".kb-card-meta").inner_text().startswith("version 1 of ")
        page.get_by_text("extractive (no LLM configured) · keyword search only").wait_for()
        page.screenshot(path=str(tmp_path / "chat.png"), full_page=True)

        ask(page, "How do I get overtime requests approved by my supervisor?")
        page.locator(".kb-card", has_text="overtime.txt").first.wait_for()
        assert page.locator(".kb-card", has_text="<script>window.kbPwned=1</script>").count() >= 1
        assert page.evaluate("window.kbPwned") is None  # the passage's script never ran
        assert page.locator('img[src*="evil"], img[src="x"], a[href^="javascript"], a[href*="evil"]').count() == 0
        page.screenshot(path=str(tmp_path / "hostile.png"), full_page=True)
    assert (tmp_path / "chat.png").stat().st_size > 10_000


def test_cards_show_before_a_streaming_llm_answer_is_finished(browser, tmp_path: Path, fake_openai):
    (tmp_path / "leave.md").write_text(LEAVE)
    kb = KnowledgeBase(load_settings(env={}, secrets_file=tmp_path / "none.toml", data_dir=tmp_path / "data"))
    kb.submit_paths([tmp_path / "leave.md"])
    kb.work_queue()
    kb.close()
    fake_openai.reply = LLM_REPLY
    fake_openai.token_delay_s = 0.3  # about 5 s of streaming
    llm = {"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": fake_openai.base_url, "KB_LLM_MODEL": "fake-model"}
    with running_app(tmp_path, **llm) as url:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(url)
        page.get_by_text("LLM: fake-model · keyword search only").wait_for()
        ask(page, "How do I request annual leave?")
        page.locator(".kb-card", has_text="leave.md").first.wait_for()
        assert page.locator(".kb-answer").count() == 0  # the answer is still streaming
        page.screenshot(path=str(tmp_path / "streaming.png"))
        page.locator(".kb-answer", has_text="manager approves it").wait_for()
        assert "[1]" in page.locator(".kb-answer").inner_text()
        assert page.locator(".kb-card").count() == 1  # one marker, one card
        flag = page.locator(".kb-answer .kb-flag")  # "within 5 days" is not in the passage: visible, with why
        assert flag.is_visible() and flag.inner_text() == "\u26a0 not supported: 5 is not in [1]"
        page.screenshot(path=str(tmp_path / "checked.png"), full_page=True)


def test_open_in_document_shows_the_pdf_page_with_the_passage_highlighted(browser, tmp_path: Path):
    from test_parsing import make_pdf

    (tmp_path / "benefits.pdf").write_bytes(make_pdf([["Staff benefits", "This guide lists the benefits of staff."],
                                                      ["Dental cover starts after three months of employment."]]))
    kb = KnowledgeBase(load_settings(env={}, secrets_file=tmp_path / "none.toml", data_dir=tmp_path / "data"))
    kb.submit_paths([tmp_path / "benefits.pdf"])
    kb.work_queue()
    kb.close()
    with running_app(tmp_path, KB_ADMIN_PASSWORD="correct horse battery staple") as url:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(url)
        ask(page, "When does dental cover start?")
        page.locator(".kb-card", has_text="benefits.pdf").first.wait_for()
        page.get_by_text("Open in document").first.click()
        image = page.locator('[data-testid="stImage"] img').first
        image.wait_for()
        page.get_by_text("benefits.pdf · page 2 of 2").wait_for()
        assert image.evaluate("img => img.naturalWidth") > 500  # the drawn page, not a placeholder
        page.screenshot(path=str(tmp_path / "open-in-document.png"), full_page=True)

        page.wait_for_url("**/?conversation=*")
        page.reload()  # a new session: the conversation comes back from the catalog, with its cards
        page.locator(".kb-answer", has_text="Dental cover").wait_for()
        assert page.locator(".kb-card", has_text="benefits.pdf").count() >= 1
        page.locator('[data-testid="stSidebar"]').get_by_role("button", name="When does dental cover start?").wait_for()
        page.screenshot(path=str(tmp_path / "reopened.png"), full_page=True)

        page.locator('[data-testid="stSidebarNavLink"]', has_text="Admin").click()
        page.get_by_label("Admin password").fill("correct horse battery staple")
        page.get_by_role("button", name="Unlock").click()
        page.get_by_role("tab", name="Audit log").click()
        page.get_by_text("1 of 1 answers").wait_for()
        page.locator('[data-testid="stDataFrame"]').last.wait_for()
        page.get_by_text("Question or answer holds").wait_for()
        page.wait_for_timeout(1500)  # the table draws on a canvas: give it a moment before the screenshot
        page.screenshot(path=str(tmp_path / "audit-log.png"), full_page=True)
    assert (tmp_path / "open-in-document.png").stat().st_size > 10_000


def test_a_page_opened_by_its_address_first_shows_the_apps_own_navigation(browser, tmp_path: Path):
    """The first request after a start opens /upload directly: the app's four pages, no file list."""
    with running_app(tmp_path) as url:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(f"{url}/upload")
        page.get_by_role("button", name="Add files to the knowledge base").or_(
            page.locator('[data-testid="stFileUploaderDropzoneInput"]')).first.wait_for(state="attached")
        links = page.locator('[data-testid="stSidebarNavLink"]').all_inner_texts()
        assert [link.split("\n")[-1].strip() for link in links] == ["Chat", "Upload", "Documents", "Admin"]  # after the icon name
