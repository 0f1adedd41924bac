"""Elements from unstructured's partitioners (every format but PDF), with what a reader would not keep dropped.

CSV and TSV are read with Python's csv module instead (`kb.parsing.delimited`: unstructured's reader refuses
tables of more than 5 million cells); HTML, and the HTML inside e-mails and Markdown, first goes through
`kb.parsing.html_visible`, which removes text a browser would not show and flattens nesting too deep for libxml2.

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
the opt-out variables are set below, before anything imports it (this is the only module that does).
"""

from __future__ import annotations

import os

for _opt_out in ("DO_NOT_TRACK", "SCARF_NO_ANALYTICS", "UNSTRUCTURED_DISABLE_NOTICE"):
    os.environ.setdefault(_opt_out, "1")

import email.parser
import functools
import importlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import lxml.html

from kb.parsing.delimited import RaggedTable, delimited_tables
from kb.parsing.html_visible import visible_html
from kb.parsing.tables import row_line, table_parts
from kb.parsing.markdown_links import plain_links_in_html
from kb.parsing.text import decode_text
from kb.parsing.xlsx_cells import install_cell_line_breaks
from kb.records import Element, ElementKind, ParsedFile, ParseError

# kind -> (module, partition function, keyword arguments); text kinds get decoded text, the others the path.
PARTITIONERS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "txt": ("unstructured.partition.text", "partition_text", {}),
    # md_in_html: Markdown inside <div markdown=1> (site generators' accordions) is Markdown, not raw text.
    "md": ("unstructured.partition.md", "partition_md", {"extensions": ["tables", "fenced_code", "md_in_html"]}),
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
TABLE_KINDS = {"csv", "tsv"}  # read by kb.parsing.delimited; as text when they will not tabulate
# Partitioners that hand HTML to unstructured's partition_html from inside: they get the visible HTML too.
HTML_INSIDE = {
    "md": "unstructured.partition.md", "eml": "unstructured.partition.email", "msg": "unstructured.partition.msg",
}  # fmt: skip
MAX_HEADING_WORDS = 30
SKIPPED_CATEGORIES = {"PageBreak", "Header", "Footer", "PageNumber"}
KIND_BY_CATEGORY: dict[str, ElementKind] = {"Title": "title", "ListItem": "list_item", "Table": "table"}

SENTENCE_BOUNDARY = re.compile(r"(?<=[.!?])\s+")
WORD = re.compile(r"\w+|[^\w\s]")
# Markdown files of static-site generators start with YAML metadata between two "---" lines.
FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?\n)---[ \t]*(\r?\n|\Z)", re.DOTALL)
FRONT_MATTER_TITLE = re.compile(r"^title:[ \t]*(.+?)[ \t]*$", re.MULTILINE)
# Liquid/Jinja statements ({% include x %}, {% alert %}) in site-generator Markdown: markup, never content.
TEMPLATE_TAG = re.compile(r"\{%-?.*?-?%\}", re.DOTALL)
# ... except as a link's target ("[text]({% page x %})", "[id]: {% page x %}"): there it stands for a URL, and
# removing it would leave "[text]()" or an empty definition, which Markdown shows as brackets.
LINK_TEMPLATE_TAG = re.compile(r"(\]\(\s*|^[ \t]*\[[^\]\n]+\]:[ \t]*)\{%-?.*?-?%\}", re.DOTALL | re.MULTILINE)


@functools.cache
def install_offline_text_classifier() -> None:
    """Let unstructured classify text without spaCy or a network (see the module docstring). Runs once."""
    from unstructured.partition import text_type as imported

    text_type: Any = imported  # it declares its tokenizers lru_cache wrappers; plain functions serve the same calls
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


def partition(path: Path, kind: str) -> ParsedFile:
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
    if kind == "xlsx":
        install_cell_line_breaks()
    front_title = None
    if kind == "md":
        front_title, text = split_front_matter(text)
        text = TEMPLATE_TAG.sub("", LINK_TEMPLATE_TAG.sub(r"\1#", text)) if "{%" in text else text
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
    pass through `visible_html` first, as a .html file's does; Markdown's also loses the link syntax it left
    as text (`kb.parsing.markdown_links`). Runs once per module."""
    module: Any = importlib.import_module(module_name)  # a partitioner module, typed by its use here
    partition_html = module.partition_html
    fix_text = plain_links_in_html if module_name == HTML_INSIDE["md"] else None

    @functools.wraps(partition_html)
    def partition_visible_html(*args: Any, **kwargs: Any) -> list[Any]:
        if kwargs.get("text"):
            kwargs["text"] = visible_html(kwargs["text"], fix_text)
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
        rows = table_rows(metadata.text_as_html) if el.category == "Table" and metadata.text_as_html else None
        text = "\n".join(filter(None, map(row_line, rows))) if rows is not None else el.text
        if not text.strip():
            continue
        if kind == "xlsx":
            if metadata.page_name and metadata.page_name != sheet:
                sheet = metadata.page_name
                yield Element(text=sheet, kind="title", level=1)
            page = None
        else:
            page = metadata.page_number
        element_kind: ElementKind = KIND_BY_CATEGORY.get(el.category, "text")
        if element_kind == "title" and len(text.split()) > MAX_HEADING_WORDS:
            element_kind = "text"  # a paragraph typed into a title placeholder or styled as a heading
        level = (metadata.category_depth or 0) if element_kind == "title" else 0
        if rows is not None:  # a table: in parts that fit in a chunk, each starting with the header row
            yield from (replace(part, page=page, slide=kind == "pptx") for part in table_parts(rows))
        else:
            yield Element(text=text, kind=element_kind, page=page, level=level, slide=kind == "pptx")


def table_text(html: str) -> str:
    """A table as one line per row, non-empty cells separated by " | ", so it can be split between rows."""
    return "\n".join(filter(None, map(row_line, table_rows(html))))


def table_rows(html: str) -> list[tuple[str, ...]]:
    """The cells of each row of an HTML table, whitespace collapsed, empty cells kept as ""."""
    return [
        tuple(" ".join(cell.text_content().split()) for cell in row.iterchildren("td", "th"))
        for row in lxml.html.fromstring(html).iter("tr")
    ]
