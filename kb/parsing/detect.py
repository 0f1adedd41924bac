"""What a file really is: its kind decided by its content, and the one-line reason when it cannot be read.

The kind of a file comes from its content (libmagic, the zip or OLE container inside it); the file name only
chooses between text formats (Markdown, plain text, CSV, HTML, e-mail ...), so a PDF renamed to .docx is still
read as a PDF. One exception the other way: a file named as text (.md, .txt, .csv ...) whose bytes decode as
text is text, whatever libmagic guesses from its first words (an abstract starting "Article" is "message/news"
to it, a Markdown page with `import X from` is JavaScript, one starting "PA" is an HP-GL plot); a PNG or a zip
named .md is still what it is.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import charset_normalizer
import magic
import olefile

from kb.parsing.text import decode_text
from kb.records import ParseError

MIB = 1024 * 1024
# An Office file is a zip of XML; one that unpacks to more than this is a zip bomb, not a document.
MAX_UNPACKED_BYTES = 256 * MIB

# The file name only chooses between formats that are all plain text underneath.
TEXT_KIND_BY_EXTENSION = {
    ".md": "md", ".markdown": "md", ".txt": "txt", ".text": "txt", ".csv": "csv", ".tsv": "tsv",
    ".tab": "tsv", ".html": "html", ".htm": "html", ".eml": "eml", ".xml": "xml", ".json": "json",
}  # fmt: skip
TEXT_KIND_BY_MIME = {
    "text/html": "html", "text/xml": "xml", "application/xml": "xml", "message/rfc822": "eml",
    "application/json": "json", "text/csv": "csv", "text/tab-separated-values": "tsv", "text/markdown": "md",
}  # fmt: skip
TEXTUAL_APPLICATION_MIMES = {"application/json", "application/xml", "application/x-ndjson", "message/rfc822"}
NOT_PLAIN_TEXT_MIMES = {"text/rtf"}  # looks like text, is markup only a converter can read
BROKEN_CONTAINER_KINDS = {
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": "pptx",
    "application/vnd.ms-outlook": "msg",
}
TEXT_SNIFF_BYTES = 64 * 1024
# Control characters other than tab, line ends, form feed and escape (coloured logs), and U+FFFD from bad bytes.
NOT_TEXT_CHARACTERS = re.compile(r"[\x01-\x08\x0e-\x1a\x1c-\x1f\x7f\ufffd]")
MAX_BAD_CHARACTER_SHARE = 0.01
CONTAINER_SIGNATURES = (b"PK\x03\x04", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1")  # zip and OLE: never plain text
OOXML_KIND_BY_PART = {"word/document.xml": "docx", "xl/workbook.xml": "xlsx", "ppt/presentation.xml": "pptx"}
# What an unsupported file is, in words a non-engineer knows, and what to do about it.
UNSUPPORTED_NAMES = {
    "application/msword": "old Word document (.doc); save it as .docx and upload it again",
    "application/vnd.ms-excel": "old Excel workbook (.xls); save it as .xlsx and upload it again",
    "application/vnd.ms-powerpoint": "old PowerPoint file (.ppt); save it as .pptx and upload it again",
    "application/vnd.oasis.opendocument.text": "OpenDocument text (.odt); save it as .docx and upload it again",
    "text/rtf": "Rich Text (.rtf); save it as .docx and upload it again",
    "application/epub+zip": "e-book (.epub)",
    "application/zip": "zip archive; unpack it and upload the files inside",
    "application/octet-stream": "unrecognised binary file",
}
MEDIA_NAMES = {"image": "picture; text in pictures is not read", "audio": "audio", "video": "video"}
KIND_LABELS = {
    "pdf": "PDF", "docx": "Word document", "xlsx": "Excel workbook", "pptx": "PowerPoint file",
    "msg": "Outlook message", "eml": "e-mail", "html": "HTML page", "xml": "XML file", "json": "JSON file",
    "csv": "CSV file", "tsv": "TSV file",
}  # fmt: skip


def detect_type(path: Path, filename: str | None = None) -> str:
    """The kind of file at `path` ("pdf", "docx", "md", ...), decided by its content.

    `filename` (the name it was uploaded under) only breaks ties between text formats. Raises ParseError for
    an empty file, anything not on the allow-list, and encrypted Office files, whose real kind is sealed inside.
    """
    path = Path(path)
    claimed = Path(filename or path.name).suffix.lower()
    if path.stat().st_size == 0:
        raise ParseError("file is empty")
    try:
        return _detect(path, claimed)
    except ParseError:
        raise
    except Exception as exc:  # a container too broken to look inside
        raise damaged(claimed.lstrip(".")) from exc


def _detect(path: Path, claimed: str) -> str:
    mime = magic.from_file(str(path), mime=True)
    if mime == "application/pdf":
        return "pdf"
    if zipfile.is_zipfile(path):
        return _zip_kind(path, mime)
    if olefile.isOleFile(str(path)):
        return _ole_kind(path, mime)
    if mime in BROKEN_CONTAINER_KINDS:  # says Office or Outlook on the outside, but cannot be opened
        raise damaged(BROKEN_CONTAINER_KINDS[mime])
    if claimed in TEXT_KIND_BY_EXTENSION and mime not in NOT_PLAIN_TEXT_MIMES and _reads_as_text(path):
        return TEXT_KIND_BY_EXTENSION[claimed]  # libmagic's guess from a few words (news, JavaScript, HP-GL)
    if _is_textual(mime) or (mime == "application/octet-stream" and _looks_like_text(path)):
        return TEXT_KIND_BY_EXTENSION.get(claimed) or TEXT_KIND_BY_MIME.get(mime, "txt")
    if mime in ("application/octet-stream", "application/zip") and claimed.lstrip(".") in KIND_LABELS:
        raise damaged(claimed.lstrip("."))  # unrecognisable bytes under a name that promises a format
    raise _unsupported(mime)


def _is_textual(mime: str) -> bool:
    return (mime.startswith("text/") and mime not in NOT_PLAIN_TEXT_MIMES) or mime in TEXTUAL_APPLICATION_MIMES


def _reads_as_text(path: Path) -> bool:
    """True when the first 64 KB decode to text: no NUL, almost no other control characters or bad bytes.

    Every binary format has NUL and control bytes within its first few hundred bytes (a PNG in its first 16),
    so this never takes a picture or an archive for text, while libmagic's text rules can match prose.
    """
    head = _head(path)
    if head is None:
        return False
    text = decode_text(head)
    if len(head) == TEXT_SNIFF_BYTES:
        text = text[:-1]  # the last character may have been cut in two
    if not text or "\x00" in text:
        return False
    bad = len(NOT_TEXT_CHARACTERS.findall(text))
    return bad <= MAX_BAD_CHARACTER_SHARE * len(text)


def _looks_like_text(path: Path) -> bool:
    """True for text libmagic calls binary: UTF-16 without a byte-order mark, text with stray NUL bytes."""
    head = _head(path)
    if head is None:
        return False
    guess = charset_normalizer.from_bytes(head).best()
    decoded = (str(guess) if guess is not None else head.decode("utf-8", errors="replace")).replace("\x00", "")
    readable = sum(char.isprintable() or char in "\t\n\r" for char in decoded) - decoded.count("\ufffd")
    return bool(decoded) and readable >= 0.9 * len(decoded)


def _head(path: Path) -> bytes | None:
    """The first 64 KB of the file, or None when they start a zip or OLE container (never plain text)."""
    with path.open("rb") as file:
        head = file.read(TEXT_SNIFF_BYTES)
    return None if head.startswith(CONTAINER_SIGNATURES) else head


def _zip_kind(path: Path, mime: str) -> str:
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
    names = {info.filename for info in infos}
    kind = next((kind for part, kind in OOXML_KIND_BY_PART.items() if part in names), None)
    if kind is None:
        raise _unsupported(mime)
    unpacked = sum(info.file_size for info in infos)
    if unpacked > MAX_UNPACKED_BYTES:
        raise ParseError(f"file unpacks to {unpacked / MIB:,.0f} MB, too large to read")
    return kind


def _ole_kind(path: Path, mime: str) -> str:
    """Outlook messages and encrypted Office files share the old OLE container with .doc/.xls/.ppt."""
    with olefile.OleFileIO(str(path)) as ole:
        if ole.exists("EncryptedPackage"):
            raise ParseError("password-protected")
        if ole.exists("__properties_version1.0"):
            return "msg"
    raise _unsupported(mime)


def damaged(kind: str | None) -> ParseError:
    """"file is damaged or not a valid PDF": the reason for a file of `kind` that its reader could not read."""
    label = KIND_LABELS.get(kind or "")
    return ParseError(f"file is damaged or not a valid {label}" if label else "file is damaged or unreadable")


def _unsupported(mime: str) -> ParseError:
    """"unsupported file type: picture; ... (image/png)": what it is for people, the MIME type for admins."""
    name = UNSUPPORTED_NAMES.get(mime) or MEDIA_NAMES.get(mime.split("/")[0])
    return ParseError(f"unsupported file type: {name} ({mime})" if name else f"unsupported file type ({mime})")
