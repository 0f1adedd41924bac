"""A document's real title: what its metadata or first heading says it is, never a placeholder.

Metadata titles are often not titles: an SEC filing's PDF is titled with its accession number
("0000320193-23-000064"), a converted Word file with "Microsoft Word - leave.docx", a new deck with
"PowerPoint Presentation". Such a title would push the document's name out of its chunks' context line
(kb.records.Chunk.indexed_text), so it is rejected here and the first heading, or the first line of the
first page, stands in.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from kb.records import Element

TOOL_TITLE_PREFIX = re.compile(r"^Microsoft (Word|PowerPoint|Excel) - ")
FILE_NAME_TITLE = re.compile(r"\.(docx?|pdf|pptx?|xlsx?|txt|rtf|odt|indd|tex|md|html?)$", re.IGNORECASE)
PLACEHOLDER_TITLE = re.compile(
    r"^(untitled|no title|title|document|presentation|book|slide|sheet|draft|powerpoint presentation"
    r"|microsoft (word|powerpoint|excel) document)(?![^\W\d_])[\s\d._-]*$",
    re.IGNORECASE,
)
WORD = re.compile(r"[^\W\d_]{3,}")  # a run of three or more letters: an identifier has none
MAX_TITLE_CHARS = 200
FALLBACK_ELEMENTS = 50  # how far into the document the first heading is looked for
MAX_FALLBACK_WORDS = 15  # a longer first line is a sentence, not a title


def real_title(raw: str | None) -> str | None:
    """The metadata title, unless it is a file name, an identifier or an authoring tool's placeholder."""
    title = TOOL_TITLE_PREFIX.sub("", " ".join((raw or "").split()))
    if not title or len(title) > MAX_TITLE_CHARS or FILE_NAME_TITLE.search(title) or PLACEHOLDER_TITLE.match(title):
        return None
    return title if WORD.search(title) else None


def fallback_title(elements: Iterable[Element]) -> str | None:
    """The first heading of the first page (or of the first elements, for formats without pages), else
    the first line of the first element that reads as a title."""
    first_line = None
    for count, element in enumerate(elements):
        if count >= FALLBACK_ELEMENTS or (element.page or 1) > 1:
            break
        if element.kind == "title" and (title := real_title(element.text)):
            return title
        line = element.text.strip().split("\n", 1)[0]
        if first_line is None and len(line.split()) <= MAX_FALLBACK_WORDS:
            first_line = real_title(line)
    return first_line
