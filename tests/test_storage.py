import hashlib
import io
from pathlib import Path

import pytest

from kb.storage import BlobStore, display_name


def test_blobs_are_content_addressed_and_stored_once(tmp_path: Path):
    store = BlobStore(tmp_path / "blobs")
    sha, size = store.put_bytes(b"hello world")
    assert sha == hashlib.sha256(b"hello world").hexdigest() and size == 11
    assert store.path(sha).read_bytes() == b"hello world"
    again, _ = store.put_bytes(b"hello world")
    assert again == sha
    assert len(list((tmp_path / "blobs").rglob("*"))) == 2  # one folder, one file
    assert not list((tmp_path / "blobs").glob(".incoming-*"))


def test_blob_path_refuses_anything_but_a_digest(tmp_path: Path):
    store = BlobStore(tmp_path)
    with pytest.raises(ValueError):
        store.path("../../etc/passwd")


def test_delete_and_size(tmp_path: Path):
    store = BlobStore(tmp_path)
    sha, _ = store.put_bytes(b"x" * 100)
    assert store.size_bytes() == 100
    store.delete(sha)
    assert not store.exists(sha) and store.size_bytes() == 0


@pytest.mark.parametrize(
    "raw, shown",
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\report.pdf", "report.pdf"),
        ("evil\u202egnp.exe", "evilgnp.exe"),
        ("line\nbreak.txt", "linebreak.txt"),
        ("..", "unnamed"),
        ("", "unnamed"),
    ],
)
def test_display_name_is_a_name_never_a_path(raw: str, shown: str):
    assert display_name(raw) == shown


def test_display_name_keeps_folders_of_an_ingested_tree():
    assert display_name("policies/../leave.md", keep_folders=True) == "policies/leave.md"


def test_recovery_never_removes_an_original_another_process_is_writing(tmp_path: Path):
    """Found under load: several `kb ingest` at once lost uploads, because the one that took over the
    queue ran crash recovery and deleted the others' half-written originals."""
    import os
    import threading

    from kb import storage

    writer, recovering = BlobStore(tmp_path / "originals"), BlobStore(tmp_path / "originals")
    halfway, resume = threading.Event(), threading.Event()

    class SlowUpload(io.RawIOBase):
        def __init__(self) -> None:
            self.parts = [b"first half, ", b"second half"]

        def read(self, size: int = -1) -> bytes:
            if len(self.parts) == 1:
                halfway.set()
                resume.wait(10)
            return self.parts.pop(0) if self.parts else b""

    result: list = []
    thread = threading.Thread(target=lambda: result.append(writer.put_stream(SlowUpload())))
    thread.start()
    assert halfway.wait(10)
    (leftover,) = (tmp_path / "originals").glob(".incoming-*")
    os.utime(leftover, (0, 0))  # as old as can be: only its lock says it is alive
    recovering.remove_incoming()
    assert leftover.exists()
    resume.set()
    thread.join(10)
    sha, size = result[0]
    assert writer.path(sha).read_bytes() == b"first half, second half" and size == 23

    abandoned = tmp_path / "originals" / (storage.INCOMING_PREFIX + "dead")
    abandoned.write_bytes(b"left by a crash")
    os.utime(abandoned, (0, 0))
    recovering.remove_incoming()
    assert not abandoned.exists()
