"""Every table the app shows can leave it (the table's own "Download as CSV", copy and paste into
a spreadsheet), so a cell holding text from users or documents is shown spreadsheet-safe."""

from __future__ import annotations

import re

import pytest

from app_helpers import ROOT, app_environment, new_app, wait_for_jobs
from kb.auth import Actor


@pytest.fixture(scope="module")
def kb(tmp_path_factory: pytest.TempPathFactory):
    with app_environment(tmp_path_factory.mktemp("tables")) as base:
        yield base


def test_upload_tables_show_file_names_and_errors_defused(kb):
    app = new_app("app_pages/upload.py")
    app.file_uploader[0].set_value([
        ("x;=1+1.md", b"# Notes\n\nThe canteen opens at eight.\n", "text/markdown"),
        ("@SUM(A1).pdf", b"%PDF-1.7\nnot really a pdf", "application/pdf"),
    ]).run()
    [b for b in app.button if b.label.startswith("Add ")][0].click().run()
    wait_for_jobs(kb, [job.id for job in kb.uploads(Actor())])
    app.run()
    assert not app.exception, app.exception
    jobs = {row["file"]: row for row in app.dataframe[0].value.to_dict("records")}
    assert set(jobs) == {"x;'=1+1.md", "'@SUM(A1).pdf"}
    documents = {row["document"]: row for row in app.dataframe[1].value.to_dict("records")}
    assert set(documents) == {"x;'=1+1.md"} and documents["x;'=1+1.md"]["chunks"] >= 1
    app.switch_page("app_pages/documents.py").run()  # the failed upload is listed there, defused too
    assert not app.exception, app.exception
    (failed,) = [f.value.to_dict("records") for f in app.dataframe if list(f.value.columns)[:1] == ["file"]]
    assert [row["file"] for row in failed] == ["'@SUM(A1).pdf"]


def test_every_table_in_the_pages_goes_through_the_one_safe_function():
    calls = {
        path.name: len(re.findall(r"\bst\.dataframe\(", path.read_text(encoding="utf-8")))
        for path in (ROOT / "app_pages").glob("*.py")
    }
    assert calls.pop("common.py") == 1, "app_pages.common.safe_table is the one place that calls st.dataframe"
    assert not any(calls.values()), calls
    assert not re.search(r"\bst\.(data_editor|table)\(", "".join(p.read_text() for p in (ROOT / "app_pages").glob("*.py")))
