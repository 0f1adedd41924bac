"""`kb sync`: a folder mirrored into the knowledge base. Added, changed and unchanged files (unchanged
decided before anything is queued), deletions only of what the sync added and only with --delete,
faults that must lose nothing (missing, unreadable or emptied folder, a file vanishing midway), the
worker's schedule (KB_SYNC_PATHS) on a fake clock, the command line and the Admin page."""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import kb.sync as sync_module
from app_helpers import app_environment, new_app
from kb.auth import LOCAL_ADMIN, Actor
from kb.cli import cli
from kb.config import load_settings
from kb.parsing import ParseSandbox
from kb.records import SyncReport
from kb.service import KnowledgeBase

LEAVE = "# Leave policy\n\nTo request annual leave, submit a request in the HR portal two weeks ahead.\n"
TRAVEL = "# Travel policy\n\nBook business travel through the travel desk and keep every receipt.\n"
PAYROLL = "# Payroll\n\nSalaries are paid on the last working day of each month by bank transfer.\n"


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def sandbox():
    """One parse helper for the module's knowledge bases: starting one costs seconds."""
    shared = ParseSandbox(timeout_s=60)
    yield shared
    shared.close()


@pytest.fixture()
def make_kb(sandbox: ParseSandbox):
    made: list[KnowledgeBase] = []

    def make(data: Path, **settings: object) -> KnowledgeBase:
        base = KnowledgeBase(load_settings(env={}, secrets_file=data / "none.toml", data_dir=data, **settings))
        base.sandbox = base.queue.runner.sandbox = sandbox
        assert base.take_queue()
        made.append(base)
        return base

    yield make
    for base in made:
        base.sandbox = ParseSandbox()  # the shared helper outlives this knowledge base
        base.close()


@pytest.fixture()
def kb(make_kb, tmp_path: Path) -> KnowledgeBase:
    return make_kb(tmp_path / "data")


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "handbook"
    write(root, "hr/leave.md", LEAVE)
    write(root, "travel.md", TRAVEL)
    write(root, ".git/config", "[core] hidden")
    write(root, ".notes.md", "a hidden file")
    return root


def statuses(report: SyncReport) -> dict[str, str]:
    return {f.name: f.status for f in report.files}


def message(report: SyncReport, name: str) -> str:
    return next(f.message for f in report.files if f.name == name)


def job_count(kb: KnowledgeBase) -> int:
    return len(kb.catalog.recent_jobs(10_000))


def sources(kb: KnowledgeBase, query: str, actor: Actor = LOCAL_ADMIN) -> set[str]:
    return {p.chunk.source for p in kb.search(query, actor=actor)}


def test_new_files_are_added_changed_ones_versioned_unchanged_ones_not_read_or_queued(kb, folder, monkeypatch):
    first = kb.sync_folder(folder)
    assert not first.error and first.outcome == "ok"
    assert statuses(first) == {"hr/leave.md": "added", "travel.md": "added"}  # hidden files and folders skipped
    assert sources(kb, "annual leave HR portal") == {"hr/leave.md"}

    jobs_before = job_count(kb)
    hashed: list[Path] = []
    monkeypatch.setattr(kb.sandbox, "parse_stream", lambda *a, **k: pytest.fail("an unchanged file was parsed"))
    monkeypatch.setattr(sync_module, "file_sha256", lambda path: hashed.append(path) or pytest.fail("read again"))
    again = kb.sync_folder(folder)
    assert statuses(again) == {"hr/leave.md": "unchanged", "travel.md": "unchanged"}
    assert again.counts["unchanged"] == 2 and again.outcome == "ok"
    assert job_count(kb) == jobs_before and not hashed  # size + mtime as last seen: nothing queued, nothing read
    monkeypatch.undo()

    os.utime(folder / "travel.md", ns=(1, 1))  # touched, same bytes: read to compare, still not queued
    touched = kb.sync_folder(folder)
    assert statuses(touched)["travel.md"] == "unchanged" and job_count(kb) == jobs_before

    write(folder, "hr/leave.md", LEAVE.replace("two weeks", "three weeks") + "Unused leave expires in March.\n")
    changed = kb.sync_folder(folder)
    assert statuses(changed) == {"hr/leave.md": "new version", "travel.md": "unchanged"}
    (leave,) = kb.find_documents("hr/leave.md", actor=LOCAL_ADMIN)
    assert leave.version == 2
    assert sources(kb, "unused leave expires March") == {"hr/leave.md"}


def test_without_delete_nothing_is_removed_and_with_delete_the_file_is_gone_from_answers(kb, folder):
    write(folder, "payroll.md", PAYROLL)
    kb.sync_folder(folder)
    assert sources(kb, "salaries paid last working day bank transfer") == {"payroll.md"}
    (folder / "payroll.md").unlink()

    kept = kb.sync_folder(folder)
    assert statuses(kept)["payroll.md"] == "kept" and "--delete" in message(kept, "payroll.md")
    assert kb.find_documents("payroll.md", actor=LOCAL_ADMIN)

    removed = kb.sync_folder(folder, delete=True)
    assert statuses(removed) == {"payroll.md": "removed", "hr/leave.md": "unchanged", "travel.md": "unchanged"}
    assert not kb.find_documents("payroll.md", actor=LOCAL_ADMIN)
    assert "payroll.md" not in sources(kb, "salaries paid last working day bank transfer")
    answer = kb.ask("When are salaries paid?", actor=LOCAL_ADMIN)
    assert all(c.passage.chunk.source != "payroll.md" for c in answer.citations)
    assert "payroll.md" not in statuses(kb.sync_folder(folder, delete=True))  # forgotten once removed


def test_documents_the_sync_did_not_add_are_never_deleted(kb, folder):
    def upload(name: str, text: str) -> None:
        submitted = kb.submit_upload(name, io.BytesIO(text.encode()), len(text), actor=LOCAL_ADMIN)
        kb.work_queue()
        assert kb.jobs([submitted.job_id])[0].outcome == "ok"

    upload("notes.md", PAYROLL)  # by hand, a name the folder never had
    upload("travel.md", TRAVEL)  # by hand, before the sync found a file of that name: adopted, not owned
    first = kb.sync_folder(folder, delete=True)
    assert statuses(first) == {"hr/leave.md": "added", "travel.md": "unchanged"}
    (folder / "travel.md").unlink()
    (folder / "hr" / "leave.md").unlink()
    write(folder, "other.md", PAYROLL)  # the folder is not empty: deletions go ahead

    second = kb.sync_folder(folder, delete=True)
    assert statuses(second) == {"other.md": "added", "travel.md": "kept", "hr/leave.md": "removed"}
    assert "not added by this sync" in message(second, "travel.md")
    assert kb.find_documents("travel.md", actor=LOCAL_ADMIN) and kb.find_documents("notes.md", actor=LOCAL_ADMIN)
    assert not kb.find_documents("hr/leave.md", actor=LOCAL_ADMIN)


def test_a_missing_or_emptied_folder_is_an_error_and_deletes_nothing(kb, folder, tmp_path):
    kb.sync_folder(folder)
    names = {d.name for d in kb.documents(actor=LOCAL_ADMIN)}
    moved = tmp_path / "elsewhere"
    folder.rename(moved)  # the network mount went away

    missing = kb.sync_folder(folder, delete=True)
    assert missing.outcome == "failed" and "does not exist" in missing.error and not missing.files
    assert {d.name for d in kb.documents(actor=LOCAL_ADMIN)} == names
    assert sources(kb, "annual leave HR portal") == {"hr/leave.md"}  # still serving

    folder.mkdir()  # an empty mount point
    empty = kb.sync_folder(folder, delete=True)
    assert set(statuses(empty).values()) == {"kept"} and "is empty" in empty.notes[0] and empty.outcome == "partial"
    assert {d.name for d in kb.documents(actor=LOCAL_ADMIN)} == names

    file = tmp_path / "a-file.md"
    file.write_text(LEAVE)
    assert "is not a folder" in kb.sync_folder(file).error


def test_an_unreadable_folder_or_subfolder_fails_clearly_and_deletes_nothing(kb, folder, monkeypatch):
    kb.sync_folder(folder)
    names = {d.name for d in kb.documents(actor=LOCAL_ADMIN)}
    real_scandir = sync_module.scandir

    def denied(unreadable: Path):
        def scandir(path):  # as chmod 000 would, also when the tests run as root
            if Path(path) == unreadable:
                raise PermissionError(13, "Permission denied", str(path))
            return real_scandir(path)
        return scandir

    monkeypatch.setattr(sync_module, "scandir", denied(folder / "hr"))
    partial = kb.sync_folder(folder, delete=True)
    assert statuses(partial) == {"hr/": "failed", "travel.md": "unchanged", "hr/leave.md": "kept"}
    assert "Permission denied" in message(partial, "hr/") and "nothing deleted" in partial.notes[0]
    assert {d.name for d in kb.documents(actor=LOCAL_ADMIN)} == names

    monkeypatch.setattr(sync_module, "scandir", denied(folder))
    refused = kb.sync_folder(folder, delete=True)
    assert "cannot read the folder" in refused.error and "Permission denied" in refused.error
    assert {d.name for d in kb.documents(actor=LOCAL_ADMIN)} == names


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a folder whatever its permissions")
def test_a_folder_without_read_permission(kb, folder):
    (folder / "hr").chmod(0)
    try:
        report = kb.sync_folder(folder, delete=True)
    finally:
        (folder / "hr").chmod(0o755)
    assert statuses(report)["hr/"] == "failed"


def test_a_file_that_vanishes_midway_fails_clearly_and_loses_nothing(kb, folder, monkeypatch):
    kb.sync_folder(folder)
    write(folder, "travel.md", TRAVEL + "Taxis need a receipt too.\n")  # changed: it will be queued
    write(folder, "new.md", PAYROLL)
    real_list = sync_module.list_folder

    def listed_then_removed(root: Path):
        listing = real_list(root)
        (root / "travel.md").unlink()
        (root / "new.md").unlink()
        return listing

    monkeypatch.setattr(sync_module, "list_folder", listed_then_removed)
    report = kb.sync_folder(folder, delete=True)
    assert statuses(report) == {"hr/leave.md": "unchanged", "travel.md": "failed", "new.md": "failed"}
    assert all("disappeared during the sync" in f.message for f in report.files if f.status == "failed")
    (travel,) = kb.find_documents("travel.md", actor=LOCAL_ADMIN)
    assert travel.status == "ok" and travel.version == 1  # the served version stays
    assert sources(kb, "travel desk receipt") == {"travel.md"}


def test_links_out_of_the_folder_are_not_followed(kb, folder, tmp_path):
    outside = write(tmp_path / "private", "secret.md", PAYROLL)
    (folder / "secret.md").symlink_to(outside)
    (folder / "private").symlink_to(outside.parent, target_is_directory=True)
    (folder / "travel-link.md").symlink_to(folder / "travel.md")  # inside: synced under the link's name
    assert statuses(kb.sync_folder(folder)) == {"hr/leave.md": "added", "travel.md": "added", "travel-link.md": "added"}
    assert not sources(kb, "salaries paid bank transfer")


def test_groups_limit_the_documents_and_the_sync_runs_with_the_actors_rights(make_kb, tmp_path, folder):
    base = make_kb(tmp_path / "data", user_groups="hana@example.com=hr;olaf@example.com=ops")
    hana, olaf = Actor("hana@example.com", groups=("hr",)), Actor("olaf@example.com", groups=("ops",))
    report = base.sync_folder(folder, actor=hana, groups=["hr"])
    assert report.counts["added"] == 2
    assert sources(base, "annual leave HR portal", hana) == {"hr/leave.md"}
    assert not sources(base, "annual leave HR portal", olaf)
    assert "not in" in base.sync_folder(folder, actor=hana, groups=["finance"]).error  # not her group
    (folder / "travel.md").unlink()
    write(folder, "x.md", PAYROLL)
    refused = base.sync_folder(folder, actor=olaf, delete=True)  # sees none of hana's documents
    assert "travel.md" not in statuses(refused) and base.find_documents("travel.md", actor=hana)


def test_the_worker_syncs_the_configured_folders_on_schedule(make_kb, tmp_path, folder):
    base = make_kb(tmp_path / "data", sync_paths=f"{folder}=hr;{tmp_path / 'missing'}", sync_interval_s=600,
                   sync_delete=True)
    schedule = base.sync_schedule
    first = schedule.run_due(at=1000.0)
    assert [r.counts["added"] for r in first] == [2, 0] and "does not exist" in first[1].error
    assert {d.groups for d in base.documents(actor=LOCAL_ADMIN)} == {("hr",)}
    write(folder, "payroll.md", PAYROLL)
    assert schedule.run_due(at=1599.0) == []  # not due yet
    (later, _) = schedule.run_due(at=1600.0)
    assert statuses(later)["payroll.md"] == "added"

    reports = {r.root: r for r in base.last_syncs(LOCAL_ADMIN)}
    assert reports[str(folder)].counts["added"] == 1 and reports[str(folder)].outcome == "ok"
    assert reports[str(tmp_path / "missing")].outcome == "failed"
    with pytest.raises(PermissionError):
        base.last_syncs(Actor("someone"))

    ran: list[SyncReport] = []
    fixed = type(schedule)(base.syncer, base.settings, clock=lambda: 5000.0)
    base.queue.scheduled = [lambda: ran.extend(fixed.run_due())]
    base.run_scheduled()  # what the app's worker thread and `kb worker` call between jobs
    assert len(ran) == 2 and statuses(ran[0])["payroll.md"] == "unchanged"
    base.run_scheduled()  # the clock stands still: not due again
    assert len(ran) == 2


def run_cli(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_the_command_prints_each_file_a_summary_and_exit_codes(tmp_path, folder, monkeypatch):
    monkeypatch.setenv("KB_DATA_DIR", str(tmp_path / "cli-data"))
    monkeypatch.chdir(tmp_path)
    first = run_cli("sync", str(folder), "--group", "hr")
    assert first.exit_code == 0, first.output
    assert sorted(first.stdout.splitlines())[0].startswith("added hr/leave.md: ")
    assert "2 added" in first.stderr

    (folder / "travel.md").unlink()
    as_json = run_cli("sync", str(folder), "--delete", "--json")
    report = json.loads(as_json.stdout)
    assert as_json.exit_code == 0 and report["outcome"] == "ok"
    assert {f["name"]: f["status"] for f in report["files"]} == {"hr/leave.md": "unchanged", "travel.md": "removed"}

    missing = run_cli("sync", str(tmp_path / "nope"), "--delete")
    assert missing.exit_code == 1 and "does not exist" in missing.stderr and not missing.stdout
    docs = json.loads(run_cli("docs", "--json").stdout)
    assert [(d["name"], d["groups"]) for d in docs] == [("hr/leave.md", ["hr"])]


def test_admin_overview_shows_the_last_sync(tmp_path, folder):
    with app_environment(tmp_path, KB_ADMIN_PASSWORD="pw", KB_SYNC_PATHS=str(folder)) as app_kb:
        deadline = time.monotonic() + 60
        while not app_kb.last_syncs(LOCAL_ADMIN):  # the app's worker thread runs the first sync at start
            assert time.monotonic() < deadline, "the scheduled sync did not run"
            time.sleep(0.1)
        app = new_app("app_pages/admin.py")
        app.text_input[0].set_value("pw")
        app.button[0].click().run()
        assert not app.exception, app.exception
        rows = [row for df in app.dataframe for row in df.value.to_dict("records") if "folder" in row]
        assert rows == [{**rows[0], "folder": str(folder), "outcome": "ok"}]
        assert rows[0]["result"].startswith("2 added")
