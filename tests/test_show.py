"""`kb show CHUNK_ID`: a passage with its document, version and pages; `--png` draws its PDF page with the
passage highlighted (kb.rendering, in a child process with limits); the same rights as a search."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image
from test_cli import env, folder, run  # noqa: F401 (fixtures)
from test_parsing import make_pdf

from kb.cli import cli
from kb.rendering import RenderError, render_page


def chunk_id_for(query: str, *extra: str) -> str:
    return json.loads(run("search", query, "-k", "1", "--json", *extra).stdout)[0]["chunk_id"]


def test_show_names_the_document_version_and_pages_and_draws_the_pdf_page(env, tmp_path: Path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "benefits.pdf").write_bytes(make_pdf([["Staff benefits", "This guide lists the benefits of staff."],
                                                  ["Dental cover starts after three months of employment."]]))
    run("ingest", str(docs))
    chunk_id = chunk_id_for("dental cover three months")
    png = tmp_path / "page.png"
    shown = json.loads(run("show", chunk_id, "--png", str(png), "--json").stdout)
    assert shown["source"] == "benefits.pdf" and shown["version"] == shown["current_version"] == 1
    assert shown["pages"] == [1, 2] and "Dental cover" in shown["text"] and shown["version_added"]
    drawn = shown["png"]
    assert drawn["page"] == 1 and drawn["pages"] == 2 and drawn["highlights"]
    image = Image.open(png).convert("RGB")
    assert image.size == (drawn["width"], drawn["height"])
    left, top, right, bottom = drawn["highlights"][0]
    r, g, b = image.getpixel(((left + right) // 2, top + 1))
    assert r > 200 and g > 150 and b < r - 60  # yellow over the passage's words, not white paper (255, 255, 255)
    second = json.loads(run("show", chunk_id, "--png", str(png), "--page", "2", "--json").stdout)["png"]
    assert second["page"] == 2 and second["highlights"]  # the passage's words on its second page too


def test_show_refuses_what_the_user_may_not_see_and_explains_a_non_pdf(env, folder: Path, monkeypatch, tmp_path: Path):
    run("ingest", str(folder / "hr"), "--group", "hr")
    run("ingest", str(folder / "travel.md"))
    secret = chunk_id_for("annual leave request")
    monkeypatch.setenv("KB_USER_GROUPS", '{"sam@example.com": ["sales"]}')
    refused = CliRunner().invoke(cli, ["show", secret, "--user", "sam@example.com"])
    assert refused.exit_code == 1 and "no passage" in refused.output and "leave" not in refused.output.lower()
    missing = CliRunner().invoke(cli, ["show", "nope:1:0"])
    assert missing.exit_code == 1 and "no passage" in missing.output
    travel = chunk_id_for("travel desk")
    assert "travel.md" in run("show", travel).stdout
    not_pdf = CliRunner().invoke(cli, ["show", travel, "--png", str(tmp_path / "x.png")])
    assert not_pdf.exit_code == 1 and "not a PDF" in not_pdf.output and "Traceback" not in not_pdf.output


def test_a_damaged_pdf_or_a_missing_page_is_a_clear_error(tmp_path: Path):
    bad = tmp_path / "bad.pdf"
    bad.write_bytes(b"%PDF-1.4 not really")
    with pytest.raises(RenderError, match="damaged"):
        render_page(str(bad), 1, [])
    good = tmp_path / "good.pdf"
    good.write_bytes(make_pdf([["One page only."]]))
    with pytest.raises(RenderError, match="has 1 pages, not page 3"):
        render_page(str(good), 3, [])


def test_the_band_around_the_highlights_is_cut_from_the_page(tmp_path: Path):
    import io

    from kb.rendering import highlighted_band

    good = tmp_path / "page.pdf"
    good.write_bytes(make_pdf([["Top line of the page.", "Dental cover starts after three months."]]))
    drawn = render_page(str(good), 1, ["Dental cover starts"])
    band = Image.open(io.BytesIO(highlighted_band(drawn)))
    assert band.width < drawn.width and band.height < drawn.height / 2
    unlit = render_page(str(good), 1, ["nowhere on the page"])
    assert unlit.boxes == () and highlighted_band(unlit) == unlit.png
