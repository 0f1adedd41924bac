"""Checking an answer's citations: is each cited sentence backed by the passages it cites?

A *claim* is a sentence of an answer that carries markers [n]. It is supported when every number
(amounts, percentages, years, dates' digits) and every proper name in it appears in a passage it
cites, and at least `MIN_SHARE` of its content words do. The check is plain text matching, so it
works for any model, or none: an extractive answer quotes its passages and is supported by
construction. It catches a marker on a sentence whose figures or names are not in the passage (the
commonest way a model's citation misleads), not a paraphrase that reverses a meaning with the same
words; bench/claims_check.py measures both rates on XQuAD.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence

from kb.records import Claim
from kb.sentences import paragraph_sentence_spans

# The share of a claim's content words a cited passage must hold. bench/claims_check.py on XQuAD at 0.5:
# correct sentences 0.0% flagged, questions restated with their answer 10.3% (mostly facts the question
# adds that the passage lacks); swapped numbers 98.8%, swapped names 94.2%, wrong passage 100% caught.
MIN_SHARE = 0.5

MARKER = re.compile(r"\s*\[(\d{1,3})\]")
# A line this short ends its block (a heading, a table row, a list item's last line), as does a blank line.
_FULL_LINE = 40
_BULLET = re.compile(r"[ \t]*(?:[-*•‣◦▪–|]|\d{1,2}[.)])\s")
_NAME = "\x00"  # marks a proper name's key, which weighs double
_WORD = re.compile(r"[^\W\d_](?:[\w'’.-]*\w)?|\d(?:[\d,.:/-]*\d)?%?", re.UNICODE)

_STOP = frozenset(
    """a about above after again against all also am an and any are as at be because been before being below
    between both but by can could did do does doing done down during each either else etc ever every few for
    from further get gets got had has have having he her here hers herself him himself his how however i if in
    into is it its itself just least less like may me might more most much must my myself neither no nor not
    now of off often on once one only or other others our ours ourselves out over own per rather same shall she
    should since so some such than that the their theirs them themselves then there these they this those
    though through thus to too under until up upon us very via was we were what when where whether which while
    who whom whose why will with within without would yet you your yours yourself yourselves""".split()
)


def split_sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence of `text`; markers after a full stop stay with their sentence.

    Every stop before a capital ends a sentence here, abbreviations too: the rates above were measured
    so (kb.sentences says what the abbreviation rule would change). A blank line ends a sentence too, so
    the extractive answer's opening note "(Extractive answer: ...)" is never part of the first quote's claim."""
    return paragraph_sentence_spans(text, abbreviations=False)


def check_claims(answer: str, passages: Mapping[int, str], min_share: float = MIN_SHARE) -> list[Claim]:
    """The claims of `answer` (its sentences with markers), each checked against the passages it cites.

    `passages` maps a marker's number to the passage text it points at."""
    indexed = {n: _Passage(text) for n, text in passages.items()}
    claims = []
    for start, end in split_sentences(answer):
        sentence = answer[start:end]
        cited = tuple(dict.fromkeys(int(n) for n in MARKER.findall(sentence)))
        if not cited:
            continue
        text = " ".join(MARKER.sub("", sentence).split())
        evidence = _evidence(text, cited, indexed)
        claims.append(_check(text, cited, [indexed[n] for n in cited if n in indexed], min_share, start, end, evidence))
    return claims


__all__ = ["MIN_SHARE", "Claim", "check_claims", "split_sentences", "unsupported"]


def unsupported(claims: Iterable[Claim]) -> list[Claim]:
    return [claim for claim in claims if not claim.supported]


class _Passage:
    """A passage's words, normalised once for every claim that cites it."""

    def __init__(self, text: str):
        self.text = text
        words = [_fold(w) for w in _WORD.findall(text)]
        self.numbers = {_number(w) for w in words if _is_number(w)}
        self.words = {w for w in words if not _is_number(w)}
        self.stems = {_stem(w) for w in self.words}
        self._sentences: list[tuple[int, int, set[str]]] | None = None

    def sentences(self) -> list[tuple[int, int, set[str]]]:
        """(start, end, its folded numbers and stems) of each sentence; a blank line or a line break
        before a short line ends one too, so a table row or a list item is a sentence of its own."""
        if self._sentences is None:
            self._sentences = []
            for first, last in _blocks(self.text):
                for start, end in split_sentences(self.text[first:last]):
                    start, end = start + first, end + first
                    self._sentences.append((start, end, _keys(self.text[start:end])))
        return self._sentences

    def best_sentence(self, keys: Sequence[str]) -> tuple[int, int] | None:
        """The sentence holding most of `keys` (numbers and names counting double; ties: the earlier one)."""
        weights = {key: 2 if key[:1].isdigit() or key.startswith(_NAME) else 1 for key in keys}
        best, best_score = None, 0
        for start, end, found in self.sentences():
            score = sum(weight for key, weight in weights.items() if key.removeprefix(_NAME) in found)
            if score > best_score:
                best, best_score = (start, end), score
        return best


def _blocks(text: str) -> list[tuple[int, int]]:
    """(start, end) of the runs of lines that read as one paragraph: a wrapped line continues on the next
    unless it is short, blank or ends a sentence, or the next one opens a bullet."""
    blocks: list[tuple[int, int]] = []
    start = offset = 0
    for line in text.splitlines(keepends=True):
        end = offset + len(line)
        after = text[end:end + 8]
        stripped = line.strip()
        if len(stripped) < _FULL_LINE or stripped[-1:] in ".!?:;" or not after.strip() or _BULLET.match(after):
            if text[start:end].strip():
                blocks.append((start, end))
            start = end
        offset = end
    if text[start:].strip():
        blocks.append((start, len(text)))
    return blocks


def _keys(text: str) -> set[str]:
    """The folded numbers and word stems of `text`, as sentences are compared with claims."""
    words = [_fold(w) for w in _WORD.findall(text)]
    return {_number(w) if _is_number(w) else _stem(w) for w in words}


def _evidence(text: str, cited: tuple[int, ...], passages: Mapping[int, _Passage]) -> tuple[tuple[int, int, int], ...]:
    """(n, start, end) of the sentence of each cited passage that best backs the claim `text`."""
    tokens = _WORD.findall(text)
    names = {_stem(_fold(name)) for name in _proper_names(tokens)}
    keys = []
    for token in tokens:
        word = _fold(token)
        if _is_number(word):
            keys.append(_number(word))
        elif _is_content(token):
            stem = _stem(word)
            keys.append(_NAME + stem if stem in names else stem)
    found = []
    for n in cited:
        if n in passages and (span := passages[n].best_sentence(list(dict.fromkeys(keys)))) is not None:
            found.append((n, *span))
    return tuple(found)


def _check(text: str, cited: tuple[int, ...], passages: Sequence[_Passage], min_share: float,
           start: int, end: int, evidence: tuple[tuple[int, int, int], ...] = ()) -> Claim:
    def claim(supported: bool, reason: str, words: Iterable[str] = ()) -> Claim:
        return Claim(text, cited, supported, reason, tuple(dict.fromkeys(words)), start, end, evidence)

    markers = ", ".join(f"[{n}]" for n in cited)
    if not passages:
        return claim(False, f"cites {markers}, which is not among the passages shown")
    tokens = _WORD.findall(text)
    numbers = [t for t in tokens if _is_number(_fold(t))]
    names = _proper_names(tokens)
    content = [t for t in tokens if _is_content(t) and t not in numbers]
    numbers_in = {n for p in passages for n in p.numbers}
    words_in = {w for p in passages for w in p.words}
    stems_in = {s for p in passages for s in p.stems}
    found = [t for t in tokens if (_number(_fold(t)) in numbers_in if t in numbers else _fold(t) in words_in)]
    missing_number = next((n for n in numbers if _number(_fold(n)) not in numbers_in), None)
    if missing_number is not None:
        return claim(False, f"{missing_number} is not in {markers}", found)
    missing_name = next((n for n in names if _stem(_fold(n)) not in stems_in), None)  # Broncos ~ Bronco's
    if missing_name is not None:
        return claim(False, f"{missing_name} is not in {markers}", found)
    if content:
        shared = sum(_stem(_fold(w)) in stems_in for w in content)
        if shared / len(content) < min_share:
            return claim(False, f"only {shared} of its {len(content)} content words are in {markers}", found)
    return claim(True, "", found)


def _proper_names(tokens: Sequence[str]) -> list[str]:
    """Capitalised words that are not the sentence's first word (which is capitalised anyway), and
    words in capitals or with inner capitals anywhere (names like IBM, McDonald). Counting the first
    word too caught 98% of swapped names on XQuAD instead of 94%, but called "Employees" a name."""
    names = []
    for i, token in enumerate(tokens):
        if not token[0].isupper() or _fold(token) in _STOP:
            continue
        inner = any(c.isupper() for c in token[1:])
        if (i > 0 or inner) and len(token) > 1:
            names.append(token)
    return names


def _is_content(token: str) -> bool:
    word = _fold(token)
    return len(word) > 2 and word not in _STOP and not _is_number(word)


def _is_number(word: str) -> bool:
    return word[:1].isdigit()


def _number(word: str) -> str:
    """A number as written in any of its usual forms: "4,500" and "4500", "12.0" and "12", "20%" and "20"."""
    digits = word.rstrip("%").replace(",", "")
    if re.fullmatch(r"\d+\.\d+", digits):
        digits = digits.rstrip("0").rstrip(".")
    return digits


def _fold(word: str) -> str:
    """Lower case without accents or curly apostrophes, so "Café" in a claim matches "cafe" in a passage."""
    plain = unicodedata.normalize("NFKD", word.replace("’", "'")).encode("ascii", "ignore").decode() or word
    return plain.lower().removesuffix("'s").strip("'.")


def _stem(word: str) -> str:
    """A crude English stem: enough that "approves", "approved" and "approval" meet "approve"."""
    for suffix in ("ations", "ation", "ments", "ment", "ings", "ing", "ies", "ied", "es", "ed", "al", "s", "e"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word
