"""Original files, content-addressed by SHA-256.

The uploaded name is metadata kept in the catalog; it never becomes a path. Identical bytes are
stored once, and a blob is written to a temporary file and renamed into place, so a crash never
leaves a half-written original behind.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from pathlib import Path
from typing import BinaryIO

_CHUNK = 1 << 20


class BlobStore:
    """Files under root/ab/abcdef…, named by the SHA-256 of their bytes."""

    def __init__(self, root: Path):
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError(f"not a SHA-256 digest: {sha256!r}")
        return self.root / sha256[:2] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def put_file(self, source: Path) -> tuple[str, int]:
        """Store a copy of `source`; returns (sha256, size)."""
        with open(source, "rb") as stream:
            return self.put_stream(stream)

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        return self.put_stream(io.BytesIO(data))

    def put_stream(self, stream: BinaryIO) -> tuple[str, int]:
        digest = hashlib.sha256()
        size = 0
        fd, tmp_name = tempfile.mkstemp(dir=self.root, prefix=".incoming-")
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
                target.parent.mkdir(exist_ok=True)
                os.replace(tmp_name, target)
            return sha, size
        except BaseException:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)
            raise

    def delete(self, sha256: str) -> None:
        self.path(sha256).unlink(missing_ok=True)

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.root.glob("??/*") if p.is_file())

    def remove_incoming(self) -> None:
        """Drop temporary files left by a crash in the middle of a write."""
        for leftover in self.root.glob(".incoming-*"):
            leftover.unlink(missing_ok=True)


# Characters that can make a name lie about itself on screen: controls and bidirectional overrides.
_INVISIBLE = {chr(c) for c in range(32)} | {"\x7f"} | set("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def display_name(name: str, keep_folders: bool = False) -> str:
    """A file name that is safe to show and store as metadata (it is never used as a path).

    Uploaded names keep only their last component; names from an ingested folder keep their
    relative folders. Control and bidirectional-override characters are dropped.
    """
    cleaned = "".join(ch for ch in name if ch not in _INVISIBLE).replace("\\", "/")
    parts = [p.strip() for p in cleaned.split("/") if p.strip() not in ("", ".", "..")]
    if not keep_folders:
        parts = parts[-1:]
    return "/".join(parts)[:255] or "unnamed"
