"""The records that cross module borders. Plain dataclasses, so every stage can be tested alone."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Literal, TypeVar

from kb.errors import ParseError  # noqa: F401  (re-exported: the records a parse produces, and its error)

NAME_SEPARATORS = re.compile(r"[\s_\-.+]+")


def document_name(source: str) -> str:
    """A document's name as words, from its path: "hr/leave_policy-2024.pdf" -> "hr leave policy 2024"."""
    path = PurePosixPath(source.replace("\\", "/"))
    parts = [*path.parent.parts, path.stem] if path.suffix else list(path.parts)
    return " ".join(word for part in parts if (word := NAME_SEPARATORS.sub(" ", part).strip()) and word != "/")


ElementKind = Literal["title", "text", "list_item", "table"]
CELL = "\x1f"  # the ASCII unit separator between a table row's cells in Element.cells (clean text never has it)


@dataclass(frozen=True)
class Element:
    """One structural piece of a parsed file: a heading, a paragraph, a list item or a table."""

    text: str
    kind: ElementKind = "text"
    page: int | None = None  # 1-based; None when the format has no pages
    level: int = 0  # heading depth for titles (0 = top)
    slide: bool = False  # its page is a slide: a passage never runs from one slide into the next
    # A table's cells: one line per line of `text`, its cells separated by CELL, empty ones kept (so the
    # columns line up); "" for other kinds and for tables whose cells are not known. One string, not a
    # tuple per row: a million-row CSV would hold ten million more objects. `table_rows` splits it.
    cells: str = ""
    header: bool = False  # the first line is the table's header row

    def table_rows(self) -> tuple[tuple[str, ...], ...]:
        """The cells of each line of `text`, or () when they are not known."""
        return tuple(tuple(line.split(CELL)) for line in self.cells.split("\n")) if self.cells else ()


@dataclass
class ParsedFile:
    """What parsing returns: the elements in reading order and what is known about the whole file."""

    elements: list[Element]
    pages: int | None = None  # number of pages when the format has pages
    title: str | None = None  # the document's own title, when it has one
    date: str | None = None  # ISO date the document itself records (kb.parsing.dates), when it has one


@dataclass(frozen=True)
class TextRecord:
    """A document that arrives as text rather than as a file (an evaluation corpus such as BEIR's)."""

    name: str  # the document's identity, like a file's name
    text: str
    title: str = ""

    def parsed(self) -> ParsedFile:
        """The record as parsing would return it: a title heading (when it has one), then its text."""
        heading = [Element(self.title.strip(), kind="title")] if self.title.strip() else []
        body = [Element(self.text.strip())] if self.text.strip() else []
        return ParsedFile(elements=[*heading, *body], title=self.title.strip() or None)


@dataclass(frozen=True)
class TableSpan:
    """The part of a chunk's text that is a table, with its cells, so it can be shown as a table."""

    start: int  # offset in Chunk.text of the first row's line
    end: int  # offset just past the last row's line: text[start:end] is the rows' lines joined by "\n"
    rows: tuple[tuple[str, ...], ...]  # one per line of text[start:end]; cells as parsed, "" for an empty one
    header: bool  # rows[0] is the table's header row (repeated at the top of every part of a long table)


@dataclass(frozen=True)
class Chunk:
    """A passage of a document version, the unit that is indexed, retrieved and cited."""

    chunk_id: str  # f"{doc_id}:{version}:{seq}"
    doc_id: str
    version: int
    seq: int  # 0-based position in the document
    source: str  # the document's name (its identity), e.g. "policies/leave.md"
    text: str  # the passage as shown to users
    page_start: int | None = None  # 1-based
    page_end: int | None = None  # equals page_start unless the chunk crosses pages
    section: str | None = None  # nearest heading above the chunk
    title: str | None = None  # the document's real title (kb.parsing.titles), None when it has none
    char_start: int = 0  # offsets into the document's extracted text
    char_end: int = 0
    groups: tuple[str, ...] = ()  # who may see it; empty means everyone
    # Where each page starts inside `text`: (offset, page), the first at offset 0; empty when the format
    # has no pages. A chunk crossing pages 12-13 says which of its words stand on page 13.
    page_starts: tuple[tuple[int, int], ...] = ()
    headings: tuple[str, ...] = ()  # the section path: headings above the chunk, outermost first
    date: str | None = None  # ISO date of the document (ParsedFile.date): cards show it, "latest" ranks by it
    # Where each heading inside `text` starts: (offset, heading). A chunk that runs into the next section says
    # which of its sentences stand under which heading; empty when no heading lies inside it.
    section_starts: tuple[tuple[int, str], ...] = ()
    tables: tuple[TableSpan, ...] = ()  # the table rows among `text`, in order; empty for a passage of prose

    @property
    def context(self) -> str:
        """The chunk's document context, one line: the document's name from its path, its title and the
        section path, each said once. Indexed with the passage (`indexed_text`), never shown as part of it:
        a 10-Q's page says "the Company", its name says "2023 Q3 AAPL"."""
        parts: list[str] = []
        for part in (document_name(self.source), self.title, *(self.headings or [self.section or ""])):
            if part and part.casefold() not in {seen.casefold() for seen in parts}:
                parts.append(part)
        return " · ".join(parts)

    def page_at(self, offset: int) -> int | None:
        """The page the character at `offset` of `text` stands on."""
        return _last_started(self.page_starts, offset, self.page_start)

    def section_at(self, offset: int) -> str | None:
        """The section the character at `offset` of `text` stands in: the last heading before it, else `section`."""
        return _last_started(self.section_starts, offset, self.section)

    @property
    def indexed_text(self) -> str:
        """The text that is embedded and keyword-indexed: the context line, then the passage."""
        return f"{self.context}\n{self.text}" if self.context else self.text

    @property
    def pages(self) -> tuple[int, int] | None:
        """[first, last] page the chunk spans (None for formats without pages); labels and page checks read
        this rather than `page_end`, which may be None for a chunk on one page."""
        if self.page_start is None:
            return None
        return self.page_start, self.page_end or self.page_start

    @property
    def pages_label(self) -> str:
        """The chunk's pages in words, for the language model's prompt: "page 3", "pages 3–4", "" without pages.

        People see `Passage.page_label` ("p. 3", with the page of the match); the prompt keeps whole words,
        which is what the model has always been shown (tests/test_answering.py asserts it)."""
        if self.pages is None:
            return ""
        first, last = self.pages
        return f"page {first}" if first == last else f"pages {first}–{last}"


Value = TypeVar("Value")


def _last_started(starts: tuple[tuple[int, Value], ...], offset: int, default: Value) -> Value:
    """The value of the last (start, value) at or before `offset` in `starts` (ordered by start), else `default`."""
    value = default
    for start, started in starts:
        if start > offset:
            break
        value = started
    return value


@dataclass(frozen=True)
class SparseVector:
    """A sparse vector in a library-neutral form (BM25 term hashes and weights)."""

    indices: list[int]
    values: list[float]


@dataclass(frozen=True)
class Passage:
    """A chunk returned by a search, with its rank (1-based) and the score that placed it there."""

    chunk: Chunk
    score: float
    rank: int
    # Where the match lies, when the chunk spans pages: in search results, the page holding most of the
    # query's matched words; in an answer's citations, the page of the sentence backing the claim.
    match_page: int | None = None

    @property
    def page(self) -> int | None:
        """Where the match lies (see `match_page`), else the chunk's first page."""
        return self.match_page if self.match_page is not None else self.chunk.page_start

    @property
    def pages(self) -> tuple[int, int] | None:
        """[first, last] page the passage spans (None for formats without pages)."""
        return self.chunk.pages

    def page_label(self, found: str = "match") -> str:
        """"p. 13", or "pp. 12–13, match on p. 13" for a passage across pages ("" without pages)."""
        if self.pages is None:
            return ""
        first, last = self.pages
        if first == last:
            return f"p. {first}"
        label = f"pp. {first}–{last}"
        return label + (f", {found} on p. {self.match_page}" if self.match_page is not None else "")


@dataclass(frozen=True)
class Citation:
    """Marker [n] in an answer and the passage it points at."""

    n: int
    passage: Passage


@dataclass(frozen=True)
class Claim:
    """One cited sentence of an answer and the outcome of checking it against its passages."""

    text: str  # the sentence as shown, markers removed
    cited: tuple[int, ...]  # the passage numbers [n] it carries
    supported: bool
    reason: str  # why it is not supported ("" when it is)
    support_words: tuple[str, ...]  # the claim's words found in the cited passages (for highlighting)
    start: int  # where the sentence stands in the answer text (with its markers): [start, end)
    end: int
    # For each cited passage n that holds its words, where in that passage's text the sentence that backs
    # it best stands: (n, start, end). Cards highlight it; a citation's page is that sentence's page.
    evidence: tuple[tuple[int, int, int], ...] = ()


@dataclass
class Answer:
    """An answer, the citations it uses (exactly the markers in `text`) and every passage retrieved."""

    text: str
    mode: Literal["extractive", "llm"]
    citations: list[Citation] = field(default_factory=list)
    passages: list[Passage] = field(default_factory=list)
    found: bool = True  # False when the documents do not hold the answer
    claims: list[Claim] = field(default_factory=list)  # its cited sentences, checked (kb.claims)


@dataclass(frozen=True)
class ShownPassage:
    """One passage looked up by its chunk id (`kb show`): the chunk, its document, and its version's date."""

    chunk: Chunk
    document: Document
    version_added: str  # when the chunk's version was added ("" if unknown)

    @property
    def is_current(self) -> bool:
        return self.chunk.version == self.document.version


@dataclass(frozen=True)
class Document:
    """A document as the catalog knows it: its identity, serving version and last ingest outcome."""

    doc_id: str
    name: str  # identity: path relative to the ingested folder, or the uploaded file name
    version: int  # the version the index serves; 0 when none ever succeeded
    status: Literal["ok", "failed", "deleting"]
    sha256: str = ""
    size: int = 0
    kind: str = ""
    pages: int | None = None
    chunks: int = 0
    error: str = ""  # the last failure's reason (the serving version, if any, is still served)
    uploader: str = ""  # who uploaded the serving version (or the last attempt)
    groups: tuple[str, ...] = ()  # who may see it (every version); empty means everyone
    owner: str = ""  # who created it: the owner and admins may change it (kb.auth.may_change)
    created_at: str = ""
    updated_at: str = ""


@dataclass(frozen=True)
class DocumentFilter:
    """Which documents a list shows: each field left empty keeps every document."""

    name: str = ""  # part of the name, any case
    failed_last: bool | None = None  # True: only those whose last upload failed (a warning); False: only the others
    groups: tuple[str, ...] = ()  # visible to any of these groups...
    for_everyone: bool = False  # ...or (also) those visible to everyone
    people: tuple[str, ...] = ()  # uploaded (the serving version) or owned by one of these
    since: str = ""  # ISO dates: last changed on or after `since`, on or before `until`
    until: str = ""

    def matches(self, doc: Document) -> bool:
        if self.name and self.name.casefold() not in doc.name.casefold():
            return False
        if self.failed_last is not None and bool(doc.error) != self.failed_last:
            return False
        if self.groups or self.for_everyone:
            if not ((self.for_everyone and not doc.groups) or set(doc.groups) & set(self.groups)):
                return False
        if self.people and doc.uploader not in self.people and doc.owner not in self.people:
            return False
        day = doc.updated_at[:10]
        return not (self.since and day < self.since) and not (self.until and day > self.until)


@dataclass(frozen=True)
class Version:
    """One version of a document (the catalog's `versions` table): when it was added, by whom, what it
    held, and whether its original is still kept (so it can be downloaded)."""

    doc_id: str
    version: int
    status: str  # indexing | ok (serving) | superseded | failed
    created_at: str
    uploader: str = ""
    sha256: str = ""
    size: int = 0
    kind: str = ""
    pages: int | None = None
    chunks: int = 0
    error: str = ""
    kept: bool = False  # the original is in the blob store


@dataclass(frozen=True)
class FailedAttempt:
    """An upload that failed, listed apart from the documents: a failure never becomes a document.

    It keeps what a retry needs (the stored original, if it was stored, and the submitter's rights as
    they were judged at submission) and, when the file was to be a new version of a document, that
    document's id (which then keeps serving its last good version, with the reason as a warning)."""

    id: int
    name: str
    reason: str  # in full
    created_at: str
    uploader: str = ""
    doc_id: str = ""  # the document it was to become a version of; "" for a new document
    blob: str = ""  # sha256 of the stored original; "" when it was refused before being stored
    size: int = 0
    groups: tuple[str, ...] | None = None  # the groups the upload asked for (None: keep the document's)
    actor_groups: tuple[str, ...] = ()
    actor_admin: bool = False
    job_id: int = 0
    kept: bool = False  # the original is still in the blob store: it can be retried


@dataclass(frozen=True)
class Job:
    """A unit of work in the catalog's queue, done by whichever process holds the index.

    A job carries the rights of the person who submitted it (`uploader`, `actor_groups`, `actor_admin`),
    judged when it was submitted, because what it may do is decided when it runs: by then the document
    it names may exist, or have changed hands."""

    id: int
    kind: Literal["ingest", "delete", "reindex", "groups"]
    name: str = ""
    blob: str = ""
    size: int = 0
    uploader: str = ""
    groups: tuple[str, ...] | None = None  # ingest: set the document's groups; None keeps them (new: everyone)
    doc_id: str = ""  # delete and groups: the document, chosen by id when the job was submitted
    actor_groups: tuple[str, ...] = ()
    actor_admin: bool = False
    status: Literal["queued", "running", "done"] = "queued"
    outcome: str = ""  # ok | unchanged | failed (when done)
    message: str = ""
    attempts: int = 0
    created_at: str = ""
    finished_at: str = ""
    done: int = 0  # progress of a running job that reports it (re-index): steps done of `total`
    total: int = 0
    batch: int = 0  # the id of the first job of the files submitted together (0: none yet), for their ETA
    started_at: str = ""  # when a worker first took it
    cancel_requested: bool = False  # asked to stop: the runner checks between stages (kb.jobs.JobCancelled)
    cleared: bool = False  # its submitter took it off their list of uploads (only once finished)


@dataclass(frozen=True)
class Feedback:
    """A thumbs up or down on one answer: the audit trail of what was asked, answered and cited."""

    id: int  # 0 until the catalog stores it
    user: str
    question: str
    query: str  # what was searched: the question made standalone from the conversation
    answer: str
    chunk_ids: tuple[str, ...]  # the cited passages, in marker order
    rating: Literal[1, -1]
    comment: str = ""
    mode: str = ""  # "llm" or "extractive"
    created_at: str = ""


@dataclass(frozen=True)
class CitedPassage:
    """One citation of a recorded answer, as it was shown: which passage of which version, on which page,
    and a hash of its text, so a later reader can tell whether the document has changed since."""

    n: int
    doc_id: str
    version: int
    chunk_id: str
    page: int | None
    text_sha256: str
    source: str = ""  # the document's name when it was cited
    text: str = ""  # the passage as it was shown: kept with the record, whatever happens to the document


@dataclass(frozen=True)
class AuditRecord:
    """An answer as it was shown to someone: what they asked, what was searched, the answer, its claims
    check and its citations; the rating they gave it, if any."""

    id: int  # 0 until the catalog stores it
    time: str
    user: str
    question: str
    query: str
    answer: str
    mode: str
    found: bool
    citations: tuple[CitedPassage, ...]
    claims: tuple[dict[str, object], ...]  # {"text", "cited", "supported", "reason"}
    rating: int | None = None  # 1 or -1 once rated
    comment: str = ""


@dataclass(frozen=True)
class Conversation:
    """One of a user's conversations, kept in the catalog so it can be reopened after a reload or restart."""

    id: str  # random: a conversation's id in a link says nothing about others
    user: str
    title: str
    created_at: str
    updated_at: str
    turns: int = 0


@dataclass
class Turn:
    """One question of a conversation and the answer shown for it (its cards are drawn from `answer`)."""

    id: str  # unique among all turns: the app keys its widgets by it
    question: str
    query: str  # what was searched: the question made standalone from the conversation
    answer: Answer
    feedback_id: int = 0
    answer_id: int = 0  # its record in the audit log
    withheld: bool = False  # it cites a document its user may no longer see: only the question is shown


@dataclass(frozen=True)
class Modes:
    """How answers are made right now: the search (hybrid or keyword-only) and the LLM, if any."""

    search: Literal["hybrid", "keyword"]
    llm_model: str | None  # None: extractive answers, no LLM configured

    @property
    def answers(self) -> Literal["llm", "extractive"]:
        return "llm" if self.llm_model else "extractive"

    def describe(self) -> str:
        """One line, so nobody mistakes keyword search or extractive answers for more."""
        answers = f"LLM: {self.llm_model}" if self.llm_model else "extractive (no LLM configured)"
        search = "hybrid search" if self.search == "hybrid" else "keyword search only"
        return f"{answers} · {search}"


SyncStatus = Literal["added", "new version", "unchanged", "removed", "kept", "failed"]
SYNC_STATUSES: tuple[SyncStatus, ...] = ("added", "new version", "unchanged", "removed", "kept", "failed")


@dataclass(frozen=True)
class SyncedFile:
    """What one sync did with one file of the folder, or with a document whose file is gone.

    `kept`: the file is gone but its document stays (no --delete, the folder could not be read in full,
    or the document was not added by this sync)."""

    name: str
    status: SyncStatus
    message: str = ""


@dataclass(frozen=True)
class SyncReport:
    """One sync of a folder (kb.sync): each file's outcome, the counts, and why it stopped if it did.

    `error` set means the folder itself could not be read: nothing was added or deleted. The catalog
    keeps the last report of each folder without `files`, for Admin."""

    root: str
    started_at: str
    seconds: float
    counts: dict[str, int]
    files: tuple[SyncedFile, ...] = ()
    error: str = ""
    notes: tuple[str, ...] = ()  # e.g. why deletions were skipped

    @property
    def outcome(self) -> Literal["ok", "partial", "failed"]:
        if self.error:
            return "failed"
        return "partial" if self.counts.get("failed") or self.notes else "ok"

    def summary(self) -> str:
        """"3 added, 1 new version, 880 unchanged, 0 removed, 0 kept, 0 failed" (or the error)."""
        if self.error:
            return f"not synced: {self.error}"
        return ", ".join(f"{self.counts.get(status, 0)} {status}" for status in SYNC_STATUSES)


@dataclass(frozen=True)
class SyncRecord:
    """The catalog's note of a file a sync handled: which document it became and what the file was then,
    so the next sync can tell an unchanged file (size, mtime) without reading it, and which documents
    it may delete (`created`: this sync added the document, rather than finding one of that name)."""

    root: str
    name: str
    doc_id: str
    created: bool
    size: int
    mtime_ns: int
    sha256: str  # "" when the file was refused before it was stored
    outcome: str  # the last ingest's: ok | unchanged | failed
    message: str = ""
