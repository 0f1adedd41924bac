"""Follow-up questions made searchable without a language model: the previous question's topic is added.

"and for part-time staff?" after "How many weeks of parental leave?" searched alone finds whatever
mentions staff (a 10-K's table of contents); searched as "and for part-time staff? (weeks parental leave)"
it finds the part-time leave passage. Only follow-ups are rewritten: a question that names its own
topic is searched as asked.
"""

from __future__ import annotations

import re
from typing import Sequence

from kb.answering.extractive import QUESTION_FRAMING, QueryTerms

# A question opening like this continues the previous one ("and for part-time staff?", "what about contractors?").
_CONTINUATION = re.compile(
    r"^\s*(?:and|also|but|or|plus|then|same|what\s+about|how\s+about|what\s+if|and\s+if|as\s+for|in\s+that\s+case)\b",
    re.IGNORECASE,
)
# Words that point back at the previous question's topic ("Is it paid?", "Who approves them?").
_BACK_REFERENCE = re.compile(r"\b(?:it|its|they|them|their|theirs|that|this|these|those|such)\b",
                             re.IGNORECASE)
# A back-reference is read as one only in a short question: "Is it possible to carry unused annual leave
# over?" names its topic itself (5 content terms), "Does it apply to contractors?" does not (2).
BACK_REFERENCE_MAX_TERMS = 3
# Fewer content terms than this and a question cannot name a topic by itself ("Why?", "How much?", "Deadline?").
MIN_OWN_TERMS = 2
MAX_CONTEXT_WORDS = 12  # from the previous query; a chain of follow-ups carries the topic, not every word
_WORD = re.compile(r"[\w][\w'’.-]*[\w]|[\w]")


def content_terms(text: str, query_terms: QueryTerms) -> set[int]:
    """The analyzed terms of `text` that name a topic: stop words and question framing ("how many") left out."""
    return query_terms(text) - query_terms(QUESTION_FRAMING)


def is_follow_up(question: str, query_terms: QueryTerms) -> bool:
    """Whether the question leans on the previous one: it opens as a continuation, it has fewer than
    MIN_OWN_TERMS content terms, or it is short and refers back (it, they, that, those, ...)."""
    own = len(content_terms(question, query_terms))
    if _CONTINUATION.match(question) or own < MIN_OWN_TERMS:
        return True
    return own <= BACK_REFERENCE_MAX_TERMS and _BACK_REFERENCE.search(question) is not None


def topic_words(text: str, query_terms: QueryTerms, exclude: set[int]) -> list[str]:
    """The words of `text` that carry content terms not in `exclude`, once each, in their order."""
    framing = query_terms(QUESTION_FRAMING)
    words: list[str] = []
    seen = set(exclude)
    for word in _WORD.findall(text):
        terms = query_terms(word) - framing - seen
        if terms:
            words.append(word)
            seen |= terms
    return words[:MAX_CONTEXT_WORDS]


def offline_standalone(question: str, history: Sequence[tuple[str, str]], query_terms: QueryTerms) -> str:
    """What to search for `question` without a model: a follow-up gets the content words of the previous
    turn's query appended in parentheses; any other question is returned unchanged.

    `history` is the earlier (query, answer) turns, oldest first; only the last query is read (it already
    carries its own context when it was a follow-up), never an answer's text.
    """
    if not history or not is_follow_up(question, query_terms):
        return question
    previous = history[-1][0]
    words = topic_words(previous, query_terms, exclude=content_terms(question, query_terms))
    return f"{question} ({' '.join(words)})" if words else question
