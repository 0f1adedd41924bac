"""A document's own date: when its author last saved it, as the file itself records it.

Shown on passage cards and used to rank "the latest report" questions (kb.retrieval). Read from the
format's metadata only, never from the file system (an upload's mtime is the upload's time):
a PDF's ModDate (else CreationDate), an Office file's docProps/core.xml dcterms:modified (else
created). A date that cannot be read, or lies outside 1980 .. next year, is no date.
"""

from __future__ import annotations

import datetime as dt
import re
import zipfile
from pathlib import Path

OFFICE_KINDS = {"docx", "pptx", "xlsx"}
CORE_XML_MAX_BYTES = 64 * 1024  # a real core.xml is about 1 KB; read no more of a hostile one
# D:20231121163956-05'00' (PDF), 2023-11-21T16:39:56Z (W3CDTF in core.xml): the calendar date is enough.
_PDF_DATE = re.compile(r"^(?:D:)?(\d{4})(\d{2})?(\d{2})?")
_CORE_DATES = tuple(  # modified first, else created
    re.compile(rf"<dcterms:{name}\b[^>]*>\s*(\d{{4}})-(\d{{2}})-(\d{{2}})".encode()) for name in ("modified", "created")
)


def pdf_date(modified: str | None, created: str | None) -> str | None:
    """ISO date from a PDF's ModDate / CreationDate strings."""
    for value in (modified, created):
        match = _PDF_DATE.match((value or "").strip())
        if match:
            date = _valid(match.group(1), match.group(2) or "01", match.group(3) or "01")
            if date:
                return date
    return None


def office_date(path: Path) -> str | None:
    """ISO date from an Office Open XML file's core properties (None when absent or unreadable)."""
    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo("docProps/core.xml")
            if info.file_size > CORE_XML_MAX_BYTES:
                return None
            with archive.open(info) as member:
                core = member.read(CORE_XML_MAX_BYTES)
    except (KeyError, OSError, zipfile.BadZipFile, RuntimeError, NotImplementedError):
        return None
    for pattern in _CORE_DATES:
        match = pattern.search(core)
        if match:
            date = _valid(*(group.decode() for group in match.groups()))
            if date:
                return date
    return None


def _valid(year: str, month: str, day: str) -> str | None:
    try:
        date = dt.date(int(year), int(month), int(day))
    except ValueError:
        return None
    if not 1980 <= date.year <= dt.date.today().year + 1:
        return None
    return date.isoformat()
