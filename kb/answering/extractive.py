"""The offline answerer: quote the passages' sentences that best answer the question, each with its marker [n].

Used when no language model is configured, and as the fallback when the model cannot be reached.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable, Iterator

from kb.answering.citations import MARKER, NO_PASSAGES, NO_SEARCH_TERMS, TOO_FEW_TERMS, finalize
from kb.records import Answer, Passage
from kb.sentences import split_sentences

QueryTerms = Callable[[str], set[int]]  # text -> its analyzed search terms (kb.embedding.Bm25Encoder.query_terms)

EXTRACTIVE_NOTE = (
    "(Extractive answer: sentences quoted from your documents; no language model is configured.)"
)
# Words that frame a question rather than name its topic ("how many", "please tell me"); documents
# rarely repeat them, so they would only make every passage look less relevant.
QUESTION_FRAMING = "could would please tell like know wonder explain describe many much"
RANK_BONUS = 0.1  # added to a sentence from the first passage, shrinking to 0 for the last one
# Quote sentences that score at least this share of the best one's score. On XQuAD (1190 questions,
# top-5 BM25 passages) 0.7 quoted the answer in 84% of answers with 1.5 sentences; 0.5: 88% with 2.0.
KEEP_SHARE = 0.7
HEADING_MAX_WORDS = 8  # a shorter line without end punctuation is a heading, not an answer

_BULLET = re.compile(r"^(?:[-*•‣◦▪–]|\d{1,2}[.)]|[a-z][.)])\s+")
_BLANK_LINE = re.compile(r"\n[ \t]*\n")
_END_PUNCTUATION = re.compile(r"[.!?:;][\"'”’)]*$")


def _paragraphs(text: str) -> Iterator[tuple[str, bool]]:
    """(paragraph, is_bulleted_item) in reading order; lines wrapped inside a paragraph or item are joined."""
    for block in _BLANK_LINE.split(text):
        lines: list[str] = []
        is_item = False
        for line in (raw.strip() for raw in block.splitlines()):
            bullet = _BULLET.match(line)
            if bullet:
                if lines:
                    yield " ".join(lines), is_item
                lines, is_item = [line[bullet.end():]], True
            elif line:
                lines.append(line)
        if lines:
            yield " ".join(lines), is_item


def split_quotes(text: str) -> list[str]:
    """The units an extractive answer quotes: sentences and list items, in reading order.

    A sentence ending in ':' keeps the list items it introduces, written as "- item" lines: bulleted
    lines, or paragraphs without end punctuation (parsed lists lose their bullets). Such a sentence
    is left out when nothing follows it (it introduced a picture or a table). Short unpunctuated
    lines elsewhere are headings and are left out too.
    """
    quotes: list[str] = []
    collecting = False  # the last quote ends in ':' and takes the list items that follow
    for paragraph, is_item in _paragraphs(text):
        for piece in [paragraph] if is_item else split_sentences(paragraph):
            unpunctuated = not _END_PUNCTUATION.search(piece)
            if collecting and (is_item or (unpunctuated and piece == paragraph)):
                quotes[-1] += f"\n- {piece}"
                continue
            collecting = not is_item and piece.endswith(":")
            if is_item or not (unpunctuated and len(piece.split()) < HEADING_MAX_WORDS):
                quotes.append(piece)
    return [quote for quote in quotes if "\n" in quote or not quote.endswith(":")]


@dataclass(frozen=True)
class _Quote:
    passage: int  # 0-based position in the passages given
    position: int  # order inside the passage
    text: str
    terms: frozenset[int]  # the question's terms it holds (its own and its section heading's)


def extractive_answer(
    question: str,
    passages: list[Passage],
    query_terms: QueryTerms,
    min_relevance: float = 0.5,
    max_sentences: int = 4,
    note: str = EXTRACTIVE_NOTE,
) -> Answer:
    """Quote the sentences that best answer the question, each followed by its passage's marker [n].

    A sentence scores the share of the question's terms it holds, rarer terms weighing more
    (inverse document frequency over the candidate sentences), plus a small bonus for its passage's
    rank. Only passages holding at least `min_relevance` of the question's terms are used; when none
    does, the answer is "not found" and keeps the passages for display. `note` opens the text.
    """
    if not passages:
        return _not_found(NO_PASSAGES, passages)
    wanted = query_terms(question) - query_terms(QUESTION_FRAMING)
    if not wanted:
        return _not_found(NO_SEARCH_TERMS, passages)
    # One shared word is a coincidence ("capital" in "the capital of Mongolia"): ask for two when there are two.
    needed = max(min_relevance * len(wanted), min(2, len(wanted)))
    quotes = [
        quote
        for i, passage in enumerate(passages)
        if len(wanted & query_terms(passage.chunk.indexed_text)) >= needed
        for quote in _quotes(i, passage, wanted, query_terms)
    ]
    if not quotes:
        return _not_found(TOO_FEW_TERMS, passages)
    weight = _term_weights(wanted, quotes)
    total = sum(weight.values())

    def score(quote: _Quote) -> float:
        share = sum(weight[t] for t in quote.terms) / total
        return share + RANK_BONUS * (1 - quote.passage / len(passages))

    ranked = sorted(quotes, key=score, reverse=True)
    best = score(ranked[0])
    chosen: dict[str, _Quote] = {}  # by text: overlapping chunks repeat sentences
    for quote in ranked:
        if len(chosen) == max_sentences or score(quote) < KEEP_SHARE * best:
            break
        chosen.setdefault(quote.text, quote)
    in_reading_order = sorted(chosen.values(), key=lambda q: (q.passage, q.position))
    body = "\n\n".join(f"{q.text} [{q.passage + 1}]" for q in in_reading_order)
    text, citations = finalize(f"{note}\n\n{body}", passages)
    return Answer(text=text, mode="extractive", citations=citations, passages=passages)


def _quotes(i: int, passage: Passage, wanted: set[int], query_terms: QueryTerms) -> list[_Quote]:
    """The passage's quotes that hold any of the question's terms, each read with its section heading."""
    heading = wanted & query_terms(passage.chunk.section or "")
    quotes = []
    for position, text in enumerate(split_quotes(passage.chunk.text)):
        text = MARKER.sub("", text)  # a document's own "[3]" would pass for a citation marker
        terms = frozenset(wanted & query_terms(text) | heading)
        if terms:
            quotes.append(_Quote(i, position, text, terms))
    return quotes


def _term_weights(wanted: set[int], quotes: list[_Quote]) -> dict[int, float]:
    """Inverse document frequency of each question term over the candidate quotes (absent = as rare as can be)."""
    count = len(quotes)
    frequency = {term: sum(term in q.terms for q in quotes) for term in wanted}
    return {term: math.log(1 + count / max(df, 1)) for term, df in frequency.items()}


def _not_found(text: str, passages: list[Passage]) -> Answer:
    return Answer(text=text, mode="extractive", passages=passages, found=False)
