"""How long the first page after a start shows nothing but a blank page (or a list that is not the app's).

    .venv/bin/python bench/first_paint.py [--app streamlit_app.py] [--runs 3]

Starts `streamlit run APP` on a free port over an empty data directory (the repository's
.streamlit/config.toml), opens "/" in Debian's headless Chromium through Playwright as soon as the
server answers its health check, and polls the page every 0.1 s: the time until the sidebar shows
the app's navigation (Chat, Upload, Admin), the time until anything else is in the sidebar's
navigation (Streamlit's automatic page list), and the time until the Chat page's own content is there.
Each run is a new server, i.e. the first load after a restart. Also prints how long importing
`app_pages.common` (the whole library) takes in a fresh interpreter: what the first run pays.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
APP_NAV = ["Chat", "Upload", "Admin"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def one_run(app: Path, browser) -> dict[str, float | None]:
    with tempfile.TemporaryDirectory() as data:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KB_", "OPENAI_"))}
        env.update(KB_DATA_DIR=data, PYTHONPATH=str(ROOT))
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(app), "--server.port", str(port), "--server.address", "127.0.0.1"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            while True:
                try:
                    with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as reply:
                        if reply.read() == b"ok":
                            break
                except OSError:
                    time.sleep(0.1)
            page = browser.new_page()
            start = time.monotonic()
            page.goto(url)
            found: dict[str, float | None] = {"app navigation": None, "other page list": None, "chat page": None}
            while time.monotonic() - start < 60 and found["chat page"] is None:
                links = [t.split("\n")[-1] for t in page.locator('[data-testid="stSidebarNavLink"]').all_inner_texts()]
                elapsed = round(time.monotonic() - start, 1)
                if links == APP_NAV and found["app navigation"] is None:
                    found["app navigation"] = elapsed
                elif links and links != APP_NAV and found["other page list"] is None:
                    found["other page list"] = elapsed
                if page.get_by_text("No documents yet").count():
                    found["chat page"] = elapsed
                time.sleep(0.1)
            page.close()
            return found
        finally:
            server.terminate()
            server.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--app", type=Path, default=ROOT / "streamlit_app.py")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", "import app_pages.common"], cwd=ROOT, check=True,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})
    print(f"import app_pages.common in a fresh interpreter: {time.monotonic() - started:.2f} s")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium",
                                             args=["--headless", "--no-sandbox", "--disable-gpu"])
        for run in range(args.runs):
            print(f"run {run + 1}: seconds after opening the page: {one_run(args.app.resolve(), browser)}")
        browser.close()


if __name__ == "__main__":
    main()
