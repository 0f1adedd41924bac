"""The first page after a start shows the app's own navigation at once, never Streamlit's automatic
list of scripts: no `pages/` folder beside streamlit_app.py (Streamlit would list every script in it,
common.py included), and nothing heavy imported before `st.navigation` is drawn (importing the library
took 4-5 s, during which the browser showed a blank page)."""

from __future__ import annotations

import ast
import subprocess
import sys

from app_helpers import APP, ROOT, new_app


def test_there_is_no_pages_folder_for_streamlit_to_list():
    assert not (ROOT / "pages").exists()


def test_the_app_script_imports_only_streamlit_and_kb_errors_before_the_navigation():
    probe = (
        "import sys; sys.argv = ['streamlit_app.py']; import streamlit_app; "
        "heavy = sorted(m for m in sys.modules if m.startswith(('app_pages', 'kb.service', 'kb.index', 'kb.catalog'))); "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(ROOT), "PATH": ""})
    assert out.stdout.strip() == "[]", out.stdout


def test_the_library_is_imported_after_st_navigation_in_main():
    tree = ast.parse(APP.read_text(encoding="utf-8"))
    main = next(node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "main")
    lines = {
        "navigation": next(n.lineno for n in ast.walk(main) if isinstance(n, ast.Attribute) and n.attr == "navigation"),
        "import": next(n.lineno for n in ast.walk(main) if isinstance(n, ast.ImportFrom) and n.module == "app_pages.common"),
    }
    assert lines["navigation"] < lines["import"]


def test_the_app_still_runs_with_its_navigation(tmp_path):
    from app_helpers import app_environment

    with app_environment(tmp_path):
        app = new_app("app_pages/upload.py")
        assert [t.value for t in app.title] == ["Add documents"]
