"""The rules both answer modes share: markers [n] that point at numbered passages, and one "not found".

The passages are numbered 1..n in the order given and an answer cites them with markers [n];
`finalize` drops markers that point nowhere and lists the ones used. Both modes use the same
"not found" sentence, so `Answer.found` means the same thing in each.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace

from kb.records import Citation, Claim, Passage

# The one sentence that means "not found", in both modes; the LLM is told to reply with it verbatim.
NOT_FOUND = "The documents do not contain the answer."
NO_PASSAGES = f"{NOT_FOUND} No passage matches the question."
NO_SEARCH_TERMS = f"{NOT_FOUND} The question has no words to search for; please name the topic."
TOO_FEW_TERMS = f"{NOT_FOUND} No passage mentions enough of the question's words."
_NOT_FOUND_SAID = re.compile(r"documents do not contain the answer", re.IGNORECASE)

# [1], [2, 3] (and [1][3] as two markers), with the spaces before it.
MARKER = re.compile(r"[ \t]*\[(\d+(?:[ \t]*[,;][ \t]*\d+)*)\]")
_REMOVED = "\x00"  # stands where a dropped marker was until the spacing around it is tidied


def says_not_found(text: str) -> bool:
    """Whether a model's answer is the "not found" sentence it was told to reply with (however it cased it).

    Only for text written by a model: the extractive answerer knows whether it found something."""
    return bool(_NOT_FOUND_SAID.search(text))


def finalize(text: str, passages: list[Passage]) -> tuple[str, list[Citation]]:
    """Drop markers that point at no passage, write the rest as [n][m], and cite each used passage once.

    Citations come in order of first use; Citation.n is the passage's number, so marker [n] and the
    passage card [n] match.
    """
    used: list[int] = []

    def rewrite(marker: re.Match[str]) -> str:
        numbers = dict.fromkeys(int(n) for n in re.findall(r"\d+", marker.group(1)))
        valid = [n for n in numbers if 1 <= n <= len(passages)]
        used.extend(n for n in valid if n not in used)
        if not valid:
            return _REMOVED
        spaces = marker.group(0)[: marker.start(1) - 1 - marker.start(0)]
        return spaces + "".join(f"[{n}]" for n in valid)

    text = MARKER.sub(rewrite, text.replace(_REMOVED, ""))
    text = re.sub(rf"(?m)^(?:{_REMOVED}[ \t]*)+", "", text)  # a dropped marker that opened a line
    text = re.sub(rf"{_REMOVED}+(?=\w)", " ", text)  # "claim [9]and" keeps its words apart
    text = text.replace(_REMOVED, "").strip()
    return text, [Citation(n, passages[n - 1]) for n in used]


def at_evidence(citations: Sequence[Citation], claims: Sequence[Claim]) -> list[Citation]:
    """The citations with each passage's page set to where the sentence backing its first claim stands.

    A passage across pages 12-13 whose quoted (or best supporting) sentence is on page 13 is cited as
    page 13, whatever page the search matched most words on."""
    where: dict[int, int] = {}
    for claim in claims:
        for n, start, _ in claim.evidence:
            where.setdefault(n, start)
    placed = []
    for citation in citations:
        chunk = citation.passage.chunk
        if citation.n in where and len(chunk.page_starts) > 1:
            page = chunk.page_at(where[citation.n])
            citation = Citation(citation.n, replace(citation.passage, match_page=page))
        placed.append(citation)
    return placed
