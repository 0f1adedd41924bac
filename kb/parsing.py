"""File -> elements: decide what a file really is, then turn it into headings, paragraphs, list items and tables.

The kind of a file comes from its content (libmagic, the zip or OLE container inside it); the file name only
chooses between text formats (Markdown, plain text, CSV, HTML, e-mail ...), so a PDF renamed to .docx is still
read as a PDF. One exception the other way: a file named as text (.md, .txt, .csv ...) whose bytes decode as
text is text, whatever libmagic guesses from its first words (an abstract starting "Article" is "message/news"
to it, a Markdown page with `import X from` is JavaScript, one starting "PA" is an HP-GL plot); a PNG or a zip
named .md is still what it is. PDFs are read with pypdfium2 (`kb.pdf_text`), CSV and TSV with Python's csv module
(`kb.delimited`: unstructured's reader refuses tables of more than 5 million cells), everything else with
unstructured's partitioner for that format; HTML, and the HTML inside e-mails and Markdown, first goes through
`kb.html_visible`, which removes text a browser would not show and flattens nesting too deep for libxml2.
Text is UTF-8 unless its bytes clearly are another encoding (`decode_text`). Every failure a user can cause
becomes a `ParseError` with one readable line.

The spaCy problem. unstructured decides whether an unstyled paragraph is prose or a heading by asking
`unstructured.partition.text_type` for its sentence count, capital-letter ratio and whether it contains a verb.
Those helpers call `unstructured.nlp.tokenize`, which downloads the spaCy model `en_core_web_sm` from GitHub on
first use: offline, Markdown, HTML, text, DOCX and PPTX partitioning fail, and online the guess turns short
paragraphs into spurious headings. `install_offline_text_classifier()` replaces the module-level names that
`text_type` looks up at call time with a regex sentence splitter and word tokenizer, and answers "prose" for every
paragraph, so headings come only from explicit structure (Markdown/HTML heading tags, Word heading styles,
slide title placeholders). No other code path of the partitioners used here reaches the tokenizer; the tests
prove it by making the model loader raise.

unstructured also sends a telemetry ping on import and on every call and prints an advert unless opted out;
the opt-out variables are set below, before anything imports it.
"""

from __future__ import annotations

import os

for _opt_out in ("DO_NOT_TRACK", "SCARF_NO_ANALYTICS", "UNSTRUCTURED_DISABLE_NOTICE"):
    os.environ.setdefault(_opt_out, "1")

import codecs
import email.parser
import functools
import importlib
import re
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import charset_normalizer
import lxml.html
import magic
import olefile

from kb.delimited import RaggedTable, delimited_tables
from kb.html_visible import visible_html
from kb.pdf_text import parse_pdf
from kb.records import Element, ParsedFile, ParseError

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

# kind -> (module, partition function, keyword arguments); text kinds get decoded text, the others the path.
PARTITIONERS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "txt": ("unstructured.partition.text", "partition_text", {}),
    "md": ("unstructured.partition.md", "partition_md", {}),
    "html": ("unstructured.partition.html", "partition_html", {}),
    "xml": ("unstructured.partition.xml", "partition_xml", {}),
    "json": ("unstructured.partition.json", "partition_json", {}),
    "docx": ("unstructured.partition.docx", "partition_docx", {}),
    "pptx": ("unstructured.partition.pptx", "partition_pptx", {}),
    "xlsx": ("unstructured.partition.xlsx", "partition_xlsx", {"find_subtable": False}),
    "eml": ("unstructured.partition.email", "partition_email", {"process_attachments": False}),
    "msg": ("unstructured.partition.msg", "partition_msg", {"process_attachments": False}),
}
# [""] skips language detection: nothing here uses it, and loading langdetect's profiles costs a second.
COMMON_OPTIONS: dict[str, Any] = {"languages": [""]}
DECODED_KINDS = {"txt", "md", "html", "xml", "json"}  # handed to unstructured as text we decoded ourselves
# Text and Markdown files bigger than this are partitioned a block at a time (text_blocks): a 100 MB
# text file at once needs more than the parse helper's 2 GB.
BLOCKED_KINDS = {"txt", "md"}
BLOCK_CHARS = 1 << 20
# Text and Markdown files bigger than this are partitioned a block at a time (text_blocks): a 100 MB
# text file at once needs more than the parse helper's 2 GB.
BLOCKED_KINDS = {"txt", "md"}
BLOCK_CHARS = 1 << 20
TABLE_KINDS = {"csv", "tsv"}  # read by kb.delimited; as text when they will not tabulate
# Partitioners that hand HTML to unstructured's partition_html from inside: they get the visible HTML too.
HTML_INSIDE = {
    "md": "unstructured.partition.md", "eml": "unstructured.partition.email", "msg": "unstructured.partition.msg",
}  # fmt: skip
MAX_HEADING_WORDS = 30
SKIPPED_CATEGORIES = {"PageBreak", "Header", "Footer", "PageNumber"}
KIND_BY_CATEGORY = {"Title": "title", "ListItem": "list_item", "Table": "table"}

BOMS = (  # UTF-32 first: its little-endian mark starts with UTF-16's
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# A well-formed UTF-8 sequence of two to four bytes (no overlongs, no surrogates, nothing above U+10FFFF).
UTF8_MULTIBYTE = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|\xe0[\xa0-\xbf][\x80-\xbf]|[\xe1-\xec\xee\xef][\x80-\xbf]{2}|\xed[\x80-\x9f][\x80-\xbf]"
    rb"|\xf0[\x90-\xbf][\x80-\xbf]{2}|[\xf1-\xf3][\x80-\xbf]{3}|\xf4[\x80-\x8f][\x80-\xbf]{2}"
)
ASCII_BYTES = bytes(range(128))
NOT_ASCII_LETTER_BYTES = bytes(b for b in range(256) if not chr(b).isascii() or not chr(b).isalpha())
NON_LATIN_SHARE = 0.3  # bytes above 127 among letters: a few percent in Western text, most in other scripts
# Windows-1252 symbols that are Windows-1250 letters (³ ¹ ¾ ¼ £ ¥ = ł ą ľ Ľ Ł Ą), next to a letter.
CENTRAL_EUROPEAN_SIGNS = re.compile(r"(?<=[^\W\d_])[\xb3\xb9\xbe\xbc\xa3\xa5]|[\xb3\xb9\xbe\xbc\xa3\xa5](?=[^\W\d_])")
# Control characters, and invisible characters that split words or reverse their display.
INVISIBLE = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f\u200b\u2060\ufeff\u202a-\u202e\u2066-\u2069]")
LINE_BREAK = re.compile(r"\r\n|[\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")  # where str.splitlines splits
OTHER_LINE_BREAK = re.compile(r"[\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")
UNUSUAL_SPACE = re.compile(r"[^\S \n]")  # whitespace other than a space or a line end
SPACE_RUN = re.compile(r"[ \t\xa0]+")
LINE_EDGE_SPACE = re.compile(r"[^\S\n]*\n[^\S\n]*")
BLANK_LINES = re.compile(r"\n{3,}")
SENTENCE_BOUNDARY = re.compile(r"(?<=[.!?])\s+")
WORD = re.compile(r"\w+|[^\w\s]")
# Markdown files of static-site generators start with YAML metadata between two "---" lines.
FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?\n)---[ \t]*(\r?\n|\Z)", re.DOTALL)
FRONT_MATTER_TITLE = re.compile(r"^title:[ \t]*(.+?)[ \t]*$", re.MULTILINE)
# Liquid/Jinja statements ({% include x %}, {% alert %}) in site-generator Markdown: markup, never content.
TEMPLATE_TAG = re.compile(r"\{%-?.*?-?%\}", re.DOTALL)


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
        raise _damaged(claimed.lstrip(".")) from exc


def parse_file(path: Path, filename: str | None = None, max_bytes: int | None = None) -> ParsedFile:
    """Parse the file at `path` into elements in reading order. Raises ParseError with a one-line reason."""
    path = Path(path)
    size = path.stat().st_size
    if max_bytes is not None and size > max_bytes:
        raise ParseError(f"file is {size / MIB:.1f} MB, over the {max_bytes / MIB:g} MB limit")
    kind = detect_type(path, filename)
    try:
        parsed = parse_pdf(path) if kind == "pdf" else _partition(path, kind)
    except ParseError:
        raise
    except RecursionError as exc:
        raise ParseError("file is nested too deeply to read") from exc
    except MemoryError as exc:
        raise ParseError("file is too large to read into memory") from exc
    except Exception as exc:  # a library's own failure on a file it cannot read
        raise _damaged(kind) from exc
    elements = [replace(element, text=clean_text(element.text)) for element in parsed.elements]
    elements = [element for element in elements if element.text]
    if not elements:
        raise ParseError("no text found")
    title = clean_text(parsed.title) if parsed.title else None
    return ParsedFile(elements=elements, pages=parsed.pages, title=title or None)


@functools.cache
def install_offline_text_classifier() -> None:
    """Let unstructured classify text without spaCy or a network (see the module docstring). Runs once."""
    from unstructured.partition import text_type

    text_type.sent_tokenize = split_sentences
    text_type.word_tokenize = split_words
    text_type.contains_verb = lambda text: True  # every unstyled paragraph counts as prose ...
    text_type.exceeds_cap_ratio = lambda text, threshold=0.5: False  # ... however many capitals it has


def split_sentences(text: str) -> list[str]:
    """Sentences end at . ! or ? followed by whitespace; good enough to count them."""
    return [sentence for sentence in SENTENCE_BOUNDARY.split(text) if sentence.strip()]


def split_words(text: str) -> list[str]:
    """Words and punctuation marks, as a tokenizer would return them."""
    return WORD.findall(text)


def decode_text(data: bytes) -> str:
    """Text from bytes: UTF-8, with U+FFFD for bad bytes, unless the bytes clearly are another encoding.

    A byte-order mark wins; then UTF-16 without one (NUL bytes in every other position); then UTF-8, and a
    file with at least as many valid UTF-8 sequences as bad bytes is UTF-8 with errors, not another encoding
    (guessing one would garble every "ï" that was right, to fix one byte that was wrong). Only bytes that
    are mostly not UTF-8 are legacy text: see `decode_legacy`.
    """
    for bom, encoding in BOMS:
        if data.startswith(bom):
            return data[len(bom) :].decode(encoding, errors="replace")
    utf16 = _utf16_without_bom(data)
    if utf16 is not None:
        return data.decode(utf16, errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    text = data.decode("utf-8", errors="replace")
    valid = sum(1 for _ in UTF8_MULTIBYTE.finditer(data))
    invalid = text.count("\ufffd") - data.count("\ufffd".encode())
    return text if valid >= invalid else decode_legacy(data)


def decode_legacy(data: bytes) -> str:
    """Text in a legacy encoding: Windows-1252 for Latin-script text, unless it reads better as Windows-1250
    (Polish ł and ą come out as ³ and ¹ inside words); other scripts (Cyrillic, Greek, CJK ...), where bytes
    above 127 make up most letters, go to charset_normalizer, which tells those apart well but often takes
    short Western text for Arabic or Central European."""
    high = len(data.translate(None, ASCII_BYTES))
    letters = high + len(data.translate(None, NOT_ASCII_LETTER_BYTES))
    if letters and high / letters > NON_LATIN_SHARE:
        guess = charset_normalizer.from_bytes(data).best()
        if guess is not None:
            return str(guess)
    western = data.decode("cp1252", errors="replace")
    if len(CENTRAL_EUROPEAN_SIGNS.findall(western)) >= 2 or "\ufffd" in western:
        central = data.decode("cp1250", errors="replace")
        if not CENTRAL_EUROPEAN_SIGNS.search(central) and central.count("\ufffd") <= western.count("\ufffd"):
            return central
    return western


def _utf16_without_bom(data: bytes) -> str | None:
    """"utf-16-le" or "utf-16-be" for text whose every other byte is mostly NUL (Latin script in UTF-16)."""
    sample = data[:4096]
    half = len(sample) // 2
    if half < 2:
        return None
    even, odd = sample[0::2].count(0), sample[1::2].count(0)
    for nuls, others, encoding in ((odd, even, "utf-16-le"), (even, odd, "utf-16-be")):
        if nuls >= 0.4 * half and others <= 0.05 * half:
            try:
                data[: len(data) - len(data) % 2].decode(encoding)
            except UnicodeDecodeError:
                return None
            return encoding
    return None


def clean_text(text: str) -> str:
    """Text without control or invisible characters and without trailing spaces on its lines.

    Each whole-text substitution runs only when a quick search says it would change something, so the
    common case (a million table rows, plain prose) costs a few scans at C speed.
    """
    text = INVISIBLE.sub("", text)
    if "\r" in text or OTHER_LINE_BREAK.search(text):
        text = LINE_BREAK.sub("\n", text)
    if "  " in text or "\t" in text or "\xa0" in text:
        text = SPACE_RUN.sub(" ", text)
    if " \n" in text or "\n " in text or UNUSUAL_SPACE.search(text):
        text = LINE_EDGE_SPACE.sub("\n", text)
    if "\n\n\n" in text:
        text = BLANK_LINES.sub("\n\n", text)
    return text.strip()


def _detect(path: Path, claimed: str) -> str:
    mime = magic.from_file(str(path), mime=True)
    if mime == "application/pdf":
        return "pdf"
    if zipfile.is_zipfile(path):
        return _zip_kind(path, mime)
    if olefile.isOleFile(str(path)):
        return _ole_kind(path, mime)
    if mime in BROKEN_CONTAINER_KINDS:  # says Office or Outlook on the outside, but cannot be opened
        raise _damaged(BROKEN_CONTAINER_KINDS[mime])
    if claimed in TEXT_KIND_BY_EXTENSION and mime not in NOT_PLAIN_TEXT_MIMES and _reads_as_text(path):
        return TEXT_KIND_BY_EXTENSION[claimed]  # libmagic's guess from a few words (news, JavaScript, HP-GL)
    if _is_textual(mime) or (mime == "application/octet-stream" and _looks_like_text(path)):
        return TEXT_KIND_BY_EXTENSION.get(claimed) or TEXT_KIND_BY_MIME.get(mime, "txt")
    if mime in ("application/octet-stream", "application/zip") and claimed.lstrip(".") in KIND_LABELS:
        raise _damaged(claimed.lstrip("."))  # unrecognisable bytes under a name that promises a format
    raise _unsupported(mime)


def _is_textual(mime: str) -> bool:
    return (mime.startswith("text/") and mime not in NOT_PLAIN_TEXT_MIMES) or mime in TEXTUAL_APPLICATION_MIMES


def _reads_as_text(path: Path) -> bool:
    """True when the first 64 KB decode to text: no NUL, almost no other control characters or bad bytes.

    Every binary format has NUL and control bytes within its first few hundred bytes (a PNG in its first 16),
    so this never takes a picture or an archive for text, while libmagic's text rules can match prose.
    """
    with path.open("rb") as file:
        head = file.read(TEXT_SNIFF_BYTES)
    if head.startswith(CONTAINER_SIGNATURES):
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
    with path.open("rb") as file:
        head = file.read(64 * 1024)
    if head.startswith(CONTAINER_SIGNATURES):
        return False
    guess = charset_normalizer.from_bytes(head).best()
    decoded = (str(guess) if guess is not None else head.decode("utf-8", errors="replace")).replace("\x00", "")
    readable = sum(char.isprintable() or char in "\t\n\r" for char in decoded) - decoded.count("\ufffd")
    return bool(decoded) and readable >= 0.9 * len(decoded)


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


def _damaged(kind: str | None) -> ParseError:
    label = KIND_LABELS.get(kind or "")
    return ParseError(f"file is damaged or not a valid {label}" if label else "file is damaged or unreadable")


def _unsupported(mime: str) -> ParseError:
    """"unsupported file type: picture; ... (image/png)": what it is for people, the MIME type for admins."""
    name = UNSUPPORTED_NAMES.get(mime) or MEDIA_NAMES.get(mime.split("/")[0])
    return ParseError(f"unsupported file type: {name} ({mime})" if name else f"unsupported file type ({mime})")


def _partition(path: Path, kind: str) -> ParsedFile:
    """Run unstructured's partitioner for `kind` and keep what a reader would keep."""
    install_offline_text_classifier()
    if kind in ("eml", "msg"):
        _reject_encrypted_message(path, kind)
    text = decode_text(path.read_bytes()) if kind in DECODED_KINDS | TABLE_KINDS else ""
    if kind in TABLE_KINDS:
        try:
            return ParsedFile(elements=delimited_tables(text, "\t" if kind == "tsv" else None))
        except RaggedTable:
            kind = "txt"  # ragged rows: still readable as text
    if kind in HTML_INSIDE:
        route_html_through_visible(HTML_INSIDE[kind])
    front_title = None
    if kind == "md":
        front_title, text = split_front_matter(text)
        text = TEMPLATE_TAG.sub("", text)
    if kind == "html" and text.strip():
        text = visible_html(text)
    if kind in BLOCKED_KINDS and len(text) > BLOCK_CHARS:  # big text: partition it a block at a time
        elements = [el for block in text_blocks(text, kind) for el in _elements(_run_partitioner(path, kind, block), kind)]
        heading = front_title
    else:
        raw = _run_partitioner(path, kind, text)
        elements = list(_elements(raw, kind))
        heading = front_title or next((el.metadata.subject for el in raw if getattr(el.metadata, "subject", None)), None)
    if heading:
        elements.insert(0, Element(text=heading, kind="title"))
    pages = max((el.page for el in elements if el.page), default=None)
    title = next((el.text for el in elements if el.kind == "title" and el.level == 0), None)
    return ParsedFile(elements=elements, pages=pages, title=title)


def text_blocks(text: str, kind: str, size: int = BLOCK_CHARS) -> Iterator[str]:
    """`text` in pieces of about `size` characters, cut only at blank lines (paragraph ends) and, in
    Markdown, never inside a fenced code block: unstructured's text and Markdown partitioners read
    paragraphs independently, so the pieces give the elements the whole would, within bounded memory."""
    start = 0
    while start < len(text):
        end = len(text) if len(text) - start <= size else text.find("\n\n", start + size)
        while end != -1 and kind == "md" and text.count("```", start, end) % 2:
            end = text.find("\n\n", end + 2)  # inside a code fence: cut after it closes
        end = len(text) if end == -1 else end
        yield text[start:end]
        start = end


def _run_partitioner(path: Path, kind: str, text: str) -> list[Any]:
    module, function, options = PARTITIONERS[kind]
    partition = getattr(importlib.import_module(module), function)
    options = {**COMMON_OPTIONS, **options}
    if kind in DECODED_KINDS:
        return partition(text=text, **options) if text.strip() else []
    return partition(filename=str(path), **options)


@functools.cache
def route_html_through_visible(module_name: str) -> None:
    """Make the HTML that `module_name` (e-mail, Outlook, Markdown) hands to unstructured's partition_html
    pass through `visible_html` first, as a .html file's does. Runs once per module."""
    module = importlib.import_module(module_name)
    partition_html = module.partition_html

    @functools.wraps(partition_html)
    def partition_visible_html(*args: Any, **kwargs: Any) -> list[Any]:
        if kwargs.get("text"):
            kwargs["text"] = visible_html(kwargs["text"])
        return partition_html(*args, **kwargs)

    module.partition_html = partition_visible_html


def split_front_matter(text: str) -> tuple[str | None, str]:
    """The title from a Markdown file's YAML front matter, if any, and the text after it."""
    match = FRONT_MATTER.match(text)
    if not match:
        return None, text
    title = FRONT_MATTER_TITLE.search(match.group(1))
    return (title.group(1).strip("'\"") if title else None), text[match.end() :]


def _reject_encrypted_message(path: Path, kind: str) -> None:
    """unstructured returns nothing for an encrypted e-mail (PGP or S/MIME); say why instead."""
    if kind == "msg":
        from oxmsg import Message

        content_type = Message.load(str(path)).message_headers.get("Content-Type", "")
    else:
        with path.open("rb") as file:
            content_type = email.parser.BytesHeaderParser().parse(file).get("Content-Type", "")
    if "encrypted" in content_type or "pkcs7-mime" in content_type:
        raise ParseError("password-protected (encrypted e-mail)")


def _elements(raw: Iterable[Any], kind: str) -> Iterable[Element]:
    """unstructured elements -> our elements. Spreadsheets get a heading per sheet instead of page numbers."""
    sheet = None
    for el in raw:
        if el.category in SKIPPED_CATEGORIES:
            continue
        metadata = el.metadata
        if el.category == "Table":
            text = table_text(metadata.text_as_html) if metadata.text_as_html else el.text
        else:
            text = el.text
        if not text.strip():
            continue
        if kind == "xlsx":
            if metadata.page_name and metadata.page_name != sheet:
                sheet = metadata.page_name
                yield Element(text=sheet, kind="title", level=1)
            page = None
        else:
            page = metadata.page_number
        element_kind = KIND_BY_CATEGORY.get(el.category, "text")
        if element_kind == "title" and len(text.split()) > MAX_HEADING_WORDS:
            element_kind = "text"  # a paragraph typed into a title placeholder or styled as a heading
        level = (metadata.category_depth or 0) if element_kind == "title" else 0
        yield Element(text=text, kind=element_kind, page=page, level=level)


def table_text(html: str) -> str:
    """A table as one line per row, non-empty cells separated by " | ", so it can be split between rows."""
    rows = []
    for row in lxml.html.fromstring(html).iter("tr"):
        cells = (" ".join(cell.text_content().split()) for cell in row.iterchildren("td", "th"))
        line = " | ".join(cell for cell in cells if cell)
        if line:
            rows.append(line)
    return "\n".join(rows)
