"""Near-identical passages from different documents, and the words where they differ.

The same page uploaded under two names, or two versions of a policy kept as two files, give two
passages that read alike but may disagree on one figure ("two weeks" [1], "three weeks" [2]). A
reader auditing an answer has to be told, or the two cards look like independent confirmation.
Likeness compares the passages' word 3-shingles (lower case): the share of the shorter passage's
shingles the other holds, since two files' chunks need not start and end at the same words. One
changed word lowers it only a little; unrelated passages on the same topic hardly share a shingle.
"""

from __future__ import annotations

import difflib
import re

# The likeness from which two passages count as nearly the same text. One word changed in a 30-word passage
# leaves about 0.9, in a 20-word one 0.83; two sections of one policy (tests/test_duplicates.py) share almost
# nothing, and so do passages of different documents in the shared data (docs/benchmarks.md, "Chat cards").
NEAR_DUPLICATE = 0.7
SHINGLE = 3
# Below this many shingles in the shorter passage, likeness is Jaccard's (shared / all): "Ask HR." is held by
# many passages that are not its copies.
MIN_CONTAINED = 10

_WORD = re.compile(r"\w+(?:['’]\w+)*")


def shingles(text: str, size: int = SHINGLE) -> set[tuple[str, ...]]:
    """The runs of `size` consecutive words of `text`, lower-cased (the text itself when it is shorter)."""
    words = [w.lower() for w in _WORD.findall(text)]
    if len(words) < size:
        return {tuple(words)} if words else set()
    return {tuple(words[i : i + size]) for i in range(len(words) - size + 1)}


def likeness(a: str, b: str) -> float:
    """The share of the shorter text's word shingles that the other holds (Jaccard's share of all of them when
    the shorter is very short): 1.0 for the same words, or one text inside the other; 0.0 for nothing shared."""
    first, second = shingles(a), shingles(b)
    if not first or not second:
        return 0.0
    shared = len(first & second)
    shorter = min(len(first), len(second))
    return shared / shorter if shorter >= MIN_CONTAINED else shared / len(first | second)


def near_duplicate(a: str, b: str, threshold: float = NEAR_DUPLICATE) -> bool:
    return likeness(a, b) >= threshold


def differences(a: str, b: str, limit: int = 3) -> list[tuple[str, str]]:
    """Up to `limit` places where the texts' words differ, as (words in a, words in b); "" for words one lacks.

    Words only one text has at its very start or end are left out: there the passages were cut at different
    places, which is no disagreement."""
    first, second = _WORD.findall(a), _WORD.findall(b)
    matcher = difflib.SequenceMatcher(a=[w.lower() for w in first], b=[w.lower() for w in second], autojunk=False)
    steps = matcher.get_opcodes()
    found = []
    for at, (tag, i1, i2, j1, j2) in enumerate(steps):
        edge = at in (0, len(steps) - 1) and tag in ("insert", "delete")
        if tag != "equal" and not edge:
            found.append((" ".join(first[i1:i2]), " ".join(second[j1:j2])))
    return found[:limit]
