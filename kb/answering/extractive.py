"""The offline answerer: quote the passages' sentences that best answer the question, each with its marker [n].

Used when no language model is configured, and as the fallback when the model cannot be reached.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable, Iterator

from kb.answering.citations import MARKER, NO_PASSAGES, NO_SEARCH_TERMS, NOT_FOUND, TOO_FEW_TERMS, finalize
from kb.records import Answer, Chunk, Passage
from kb.sentences import split_sentences

QueryTerms = Callable[[str], set[int]]  # text -> its analyzed search terms (kb.embedding.Bm25Encoder.query_terms)

EXTRACTIVE_NOTE = (
    "(Extractive answer: sentences quoted from your documents; no language model is configured.)"
)
# Words that frame a question rather than name its topic ("how many", "please tell me"); documents
# rarely repeat them, so they would only make every passage look less relevant.
QUESTION_FRAMING = "could would please tell like know wonder explain describe many much"
# Added to a sentence from the first passage, shrinking to 0 for the last one. bench/extractive_f1.py, token-F1
# Anthropic docs / docugami / XQuAD at 0.0: 0.312 / 0.167 / 0.135; 0.1: 0.314 / 0.171 / 0.135; 0.3: 0.324 / 0.170 / 0.135.
RANK_BONUS = 0.3
# Sentences are chosen greedily by the question's terms they cover, rarer terms weighing more: the best
# first, then each next one only if it adds at least MIN_GAIN of the question's weight not yet covered,
# up to MAX_ANSWER_WORDS. Measured on XQuAD and docugami, docs/benchmarks.md "Step 7: extractive answers";
# declining when the best sentence covers under half (or 30%) of the weight cost too many answerable
# questions there (docugami answered 0.97 -> 0.14 / 0.64), so no such rule is applied.
MIN_GAIN = 0.2
# A quote longer than LONG_QUOTE_WORDS is worth (its gain) / (words / LONG_QUOTE_WORDS) ** LENGTH_PENALTY, so
# a 120-word table row or merged block does not win over the sentence that says the same in 25 words.
# bench/extractive_f1.py token-F1, Anthropic docs / XQuAD / docugami: no penalty 0.320 / 0.135 / 0.170;
# 40 words ** 0.5: 0.336 / 0.136 / 0.147 (answers 54 -> 36 words against 36-word references; docugami's
# references are 147-word summaries of whole filings, which any shorter answer matches less).
LONG_QUOTE_WORDS = 40
LENGTH_PENALTY = 0.5
MAX_ANSWER_WORDS = 80
HEADING_MAX_WORDS = 8  # a shorter line without end punctuation is a heading, not an answer
TINY_PASSAGE_WORDS = 30  # a passage this short with only such lines is quoted whole (a title slide)
# A short question is about its names and numbers ("401k employer match", "capital of Mongolia"): when no
# passage found mentions one of them, quoting the passages for the question's other words answers another
# question (a cancer booklet's "peer-support matching"). Up to this many content terms; longer questions
# carry their topic in their other words too. Measured with bench/declines.py and bench/extractive_f1.py
# (docs/benchmarks.md "Step 7: follow-ups and declines"): at 4, XQuAD answered 0.945 -> 0.936, docugami
# unchanged, off-topic declined 18 -> 20 of 21 (handbook) and 19 -> 21 of 21 (filings); at 6 XQuAD fell to 0.923.
SHORT_QUESTION_TERMS = 4
_QUESTION_WORD = re.compile(r"[^\W_](?:[\w'’.-]*\w)?")

# A heading that a PDF's text ran into the sentence after it: "Balance Billing Protection HOW PROVIDERS
# AFFECT YOUR COSTS - You pay ..." (a run of two or more all-caps words, perhaps after a few capitalised
# ones, before a capitalised word of a sentence). "US GAAP requires ..." is a sentence and is kept.
# (Each word is matched one way only, a letter required by a look-ahead: "[A-Z0-9]*[A-Z][A-Z0-9]*" backtracks
# exponentially on a long all-caps table row.)
_CAPS_WORD = r"(?=[^\s]*[A-Z])[A-Z0-9'’&/,.()-]+"
_LEADING_HEADING = re.compile(rf"^(?:[A-Z][\w'’&/,-]*\s+){{0,6}}?(?:{_CAPS_WORD}\s+){{2,}}(?:[-–—:|]\s+)?(?=[A-Z][a-z])")
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
            piece = piece if is_item else _LEADING_HEADING.sub("", piece)
            unpunctuated = not _END_PUNCTUATION.search(piece)
            if collecting and (is_item or (unpunctuated and piece == paragraph)):
                quotes[-1] += f"\n- {piece}"
                continue
            collecting = not is_item and piece.endswith(":")
            if is_item or not (unpunctuated and (len(piece.split()) < HEADING_MAX_WORDS or piece.isupper())):
                quotes.append(piece)
    return [quote for quote in quotes if ("\n" in quote or not quote.endswith(":")) and not _not_an_answer(quote)]


def _not_an_answer(quote: str) -> bool:
    """A question (an FAQ's own "Is there a limit to the image file size?") answers nothing when quoted.
    (Leaving out code read as sentences, by its share of letters and code marks, was measured too: Anthropic
    docs token-F1 0.314 -> 0.300-0.311, because API answers name identifiers the code holds; not kept.)"""
    return quote.rstrip(" \"'”’)").endswith("?")


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
    framing = query_terms(QUESTION_FRAMING)
    wanted = query_terms(question) - framing
    if not wanted:
        return _not_found(NO_SEARCH_TERMS, passages)
    if len(wanted) <= SHORT_QUESTION_TERMS:
        held = set().union(*(query_terms(p.chunk.indexed_text) for p in passages))
        absent = [w for w in names_and_numbers(question) if not query_terms(w) - framing <= held]
        if absent:
            return _not_found(f"{NOT_FOUND} No passage mentions \u201c{absent[0]}\u201d.", passages)
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
    chosen = _covering(quotes, weight, len(passages), max_sentences)
    in_reading_order = sorted(chosen, key=lambda q: (q.passage, q.position))
    body = "\n\n".join(f"{q.text} [{q.passage + 1}]" for q in in_reading_order)
    text, citations = finalize(f"{note}\n\n{body}", passages)
    return Answer(text=text, mode="extractive", citations=citations, passages=passages)


def names_and_numbers(question: str) -> list[str]:
    """The question's words with a digit ("401k", "2023") and its names: capitalised words after the first
    one, and words with inner capitals anywhere ("NVIDIA", "iPhone"); a possessive "'s" dropped."""
    words = [re.sub(r"['’]s$", "", w) for w in _QUESTION_WORD.findall(question)]
    return [
        w for i, w in enumerate(words)
        if any(c.isdigit() for c in w) or (len(w) > 1 and ((i > 0 and w[0].isupper()) or any(c.isupper() for c in w[1:])))
    ]


def _covering(quotes: list[_Quote], weight: dict[int, float], passages: int, max_sentences: int) -> list[_Quote]:
    """The quotes an answer is made of: greedily, the one adding the most uncovered question weight (ties to
    the better-ranked passage), while each adds at least MIN_GAIN and the answer stays under MAX_ANSWER_WORDS."""
    total = sum(weight.values())
    chosen: list[_Quote] = []
    covered: set[int] = set()
    seen: set[str] = set()  # overlapping chunks repeat sentences
    words = 0
    left = list(quotes)
    while left and len(chosen) < max_sentences:

        def gain(quote: _Quote) -> float:
            return sum(weight[t] for t in quote.terms - covered) / total

        def worth(quote: _Quote) -> float:
            long = len(quote.text.split()) / LONG_QUOTE_WORDS
            return (gain(quote) + RANK_BONUS * (1 - quote.passage / passages)) / max(1.0, long) ** LENGTH_PENALTY

        best = max(left, key=lambda q: (worth(q), -q.passage, -q.position))
        left.remove(best)
        length = len(best.text.split())
        if chosen and (gain(best) < MIN_GAIN or words + length > MAX_ANSWER_WORDS):
            break
        if best.text in seen:
            continue
        seen.add(best.text)
        chosen.append(best)
        covered |= best.terms
        words += length
    return chosen


def _quotes(i: int, passage: Passage, wanted: set[int], query_terms: QueryTerms) -> list[_Quote]:
    """The passage's quotes that hold any of the question's terms, each read with its section heading."""
    section = passage.chunk.section or ""
    heading = wanted & query_terms(section)
    quotes = []
    for position, text in enumerate(split_quotes(passage.chunk.text) or _short_lines(passage.chunk)):
        text = MARKER.sub("", text)  # a document's own "[3]" would pass for a citation marker
        if section and text.casefold().startswith(section.casefold() + " ") and len(text) > 2 * len(section):
            text = text[len(section):].lstrip(" -–—:|")  # the section's heading ran into its first sentence
        terms = frozenset(wanted & query_terms(text) | heading)
        if terms:
            quotes.append(_Quote(i, position, text, terms))
    return quotes


def _short_lines(chunk: Chunk) -> list[str]:
    """A tiny passage made only of short lines (a title slide: "Title Slide" / "With a subtitle") quoted as
    one line, its section heading left out: otherwise it has nothing to quote. Only under
    TINY_PASSAGE_WORDS words, so a table of contents is never quoted this way."""
    lines = [line.strip() for line in chunk.text.splitlines() if line.strip() and line.strip() != (chunk.section or "")]
    if not lines or sum(len(line.split()) for line in lines) > TINY_PASSAGE_WORDS:
        return []
    return ["; ".join(lines)]


def _term_weights(wanted: set[int], quotes: list[_Quote]) -> dict[int, float]:
    """Inverse document frequency of each question term over the candidate quotes (absent = as rare as can be)."""
    count = len(quotes)
    frequency = {term: sum(term in q.terms for q in quotes) for term in wanted}
    return {term: math.log(1 + count / max(df, 1)) for term, df in frequency.items()}


def _not_found(text: str, passages: list[Passage]) -> Answer:
    return Answer(text=text, mode="extractive", passages=passages, found=False)
