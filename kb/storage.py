"""Original files, content-addressed by SHA-256.

The uploaded name is metadata kept in the catalog; it never becomes a path. Identical bytes are
stored once, and a blob is written to a temporary file and renamed into place, so a crash never
leaves a half-written original behind. A full disk or a read-only data directory is reported as a
`DataDirError` that says so in one line, and nothing half-written stays behind either.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import io
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import BinaryIO

from kb.errors import DataDirError

_CHUNK = 1 << 20
INCOMING_PREFIX = ".incoming-"
INCOMING_GRACE_S = 60.0

# kb stops adding originals and chunks when less than this would stay free on the data directory's disk.
# The embedded index writes through memory-mapped, sparsely allocated files: a write into one on a full
# disk kills the whole process with SIGBUS instead of raising an error (measured on a small tmpfs).
MIN_FREE_BYTES = 64 * 2**20


def no_space(directory: Path, detail: str = "") -> DataDirError:
    return DataDirError(f"no space left on the disk holding the data directory ({directory}){detail}")


def read_only(directory: Path) -> DataDirError:
    return DataDirError(f"the data directory {directory} is read-only")


def not_writable(directory: Path) -> DataDirError | None:
    """Why `directory` (or, while it does not exist, its nearest ancestor) cannot be written to: a
    read-only file system or permissions. None if it can."""
    existing = next(p for p in (directory, *directory.parents) if p.exists())
    if os.access(existing, os.W_OK):  # root too is refused on a read-only file system
        return None
    if os.statvfs(existing).f_flag & os.ST_RDONLY:
        return read_only(directory)
    return DataDirError(f"the data directory {directory} is not writable by this user")


def data_dir_error(exc: OSError, directory: Path) -> OSError:
    """`exc` as the DataDirError that names the cause when it is a full disk or an unwritable directory,
    else `exc` itself."""
    if isinstance(exc, DataDirError):
        return exc
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return no_space(directory)
    if exc.errno == errno.EROFS:
        return read_only(directory)
    if exc.errno in (errno.EACCES, errno.EPERM):  # the directory's, or maybe the source file's
        return not_writable(directory) or exc
    return exc


def ensure_free_space(directory: Path, incoming: int = 0) -> None:
    """Raise DataDirError unless `incoming` more bytes leave MIN_FREE_BYTES free on `directory`'s disk."""
    free = shutil.disk_usage(directory).free
    if free - incoming < MIN_FREE_BYTES:
        mb = 2**20
        raise no_space(directory, f": {free / mb:.0f} MB free, and kb keeps {MIN_FREE_BYTES / mb:.0f} MB "
                                  "free so its index can always be written")


def make_dir(path: Path, data_dir: Path) -> None:
    """Create `path` (and its parents); a full disk or read-only data directory is a DataDirError."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise data_dir_error(exc, data_dir) from exc


class BlobStore:
    """Files under root/ab/abcdef…, named by the SHA-256 of their bytes."""

    def __init__(self, root: Path):
        self.root = root
        make_dir(root, root.parent)

    def path(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError(f"not a SHA-256 digest: {sha256!r}")
        return self.root / sha256[:2] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        return self.put_stream(io.BytesIO(data))

    def put_stream(self, stream: BinaryIO) -> tuple[str, int]:
        """Store the stream's bytes; a full disk, or too little room left for the index, is a DataDirError."""
        digest = hashlib.sha256()
        size = 0
        try:
            fd, tmp_name = tempfile.mkstemp(dir=self.root, prefix=INCOMING_PREFIX)
        except OSError as exc:
            raise data_dir_error(exc, self.root) from exc
        fcntl.flock(fd, fcntl.LOCK_EX)  # "being written": remove_incoming in another process leaves it alone
        try:
            with os.fdopen(fd, "wb") as out:
                while block := stream.read(_CHUNK):
                    digest.update(block)
                    out.write(block)
                    size += len(block)
                out.flush()
                os.fsync(out.fileno())
            sha = digest.hexdigest()
            target = self.path(sha)
            if target.is_file():
                os.unlink(tmp_name)
            else:
                ensure_free_space(self.root)  # measured with the new original on the disk
                target.parent.mkdir(exist_ok=True)
                os.replace(tmp_name, target)
            return sha, size
        except BaseException as exc:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)
            if isinstance(exc, OSError) and (clear := data_dir_error(exc, self.root)) is not exc:
                raise clear from exc
            raise

    def delete(self, sha256: str) -> None:
        self.path(sha256).unlink(missing_ok=True)

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.root.glob("??/*") if p.is_file())

    def remove_incoming(self) -> None:
        """Drop temporary files left by a crash in the middle of a write.

        Only abandoned ones: a file another process (or thread) is still writing holds a lock, which
        its writer's death releases. Files younger than INCOMING_GRACE_S are left too, for the instant
        between creating a file and locking it."""
        for leftover in self.root.glob(INCOMING_PREFIX + "*"):
            try:
                with open(leftover, "rb") as handle:
                    if time.time() - os.fstat(handle.fileno()).st_mtime < INCOMING_GRACE_S:
                        continue
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    leftover.unlink(missing_ok=True)
            except BlockingIOError:
                continue  # being written right now
            except FileNotFoundError:
                continue  # finished (renamed into place) meanwhile


# Characters that can make a name lie about itself on screen: controls and bidirectional overrides.
_INVISIBLE = {chr(c) for c in range(32)} | {"\x7f"} | set("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def display_name(name: str, keep_folders: bool = False) -> str:
    """A file name that is safe to show and store as metadata (it is never used as a path).

    Uploaded names keep only their last component; names from an ingested folder keep their
    relative folders. Control and bidirectional-override characters are dropped. Nothing is cut:
    a name is a document's identity, and two paths that differ only after some length are still two.
    """
    cleaned = "".join(ch for ch in name if ch not in _INVISIBLE).replace("\\", "/")
    parts = [p.strip() for p in cleaned.split("/") if p.strip() not in ("", ".", "..")]
    if not keep_folders:
        parts = parts[-1:]
    return "/".join(parts) or "unnamed"
