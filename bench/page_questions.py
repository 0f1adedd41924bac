"""Build a known-item page question set from any folder of PDFs: a sentence's words, asked back, must come
back with the page the sentence stands on.

    .venv/bin/python bench/page_questions.py [--files FOLDER] [--out FILE.jsonl] [--count 300] [--seed 7]

For the exact page a passage reports, no labelled set is needed: take a prose sentence from a random page
and ask for six of its content words (in order, stop words and numbers left out, like a terse user
question). Its page is the gold page. Kept only: sentences of 14-60 words, mostly letters, that stand on
one page, and whose six query words occur together in no other sentence of the folder (boilerplate
repeated across filings would have several right pages). Each line: {"id", "question", "source", "page",
"sentence"}; bench/page_eval.py --questions FILE scores it. Synthetic by construction: it measures where a
passage says its match is, not how people phrase questions (bench/docugami_pages.py is the real-question set).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BENCH, SHARED  # noqa: E402
from qa_common import pdf_pages  # noqa: E402

DEFAULT_FILES = SHARED / "rag_qa" / "docugami_sec10q" / "data" / "v1" / "docs"
DEFAULT_OUT = BENCH / "data" / "docugami_known_pages.jsonl"
QUERY_WORDS = 6
STOP = set("""a about above after all also an and any are as at be been before being between both but by can could
did do does during each for from had has have having he her his how if in into is it its may more most must no not
of on or other our out over own same she should so some such than that the their them then there these they this
those through to under until up upon very was we were what when where which while who will with within would you
your company""".split())
WORD = re.compile(r"[A-Za-z][A-Za-z'-]+")
SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


def sentences(page: str) -> list[str]:
    flat = " ".join(page.split())
    return [s for s in SENTENCE.split(flat) if 14 <= len(s.split()) <= 60]


def content_words(sentence: str) -> list[str]:
    return [w for w in WORD.findall(sentence) if w.lower() not in STOP and len(w) > 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=Path, default=DEFAULT_FILES)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    where: list[tuple[str, int, str]] = []  # (source, page, sentence)
    for pdf in sorted(args.files.rglob("*.pdf")):
        for number, page in enumerate(pdf_pages(pdf), 1):
            for sentence in sentences(page):
                letters = sum(c.isalpha() for c in sentence)
                if letters / len(sentence) >= 0.7 and len(content_words(sentence)) >= QUERY_WORDS + 2:
                    where.append((pdf.relative_to(args.files).as_posix(), number, sentence))
    word_sets = [frozenset(w.lower() for w in content_words(s)) for _, _, s in where]
    holders: dict[str, set[int]] = defaultdict(set)
    for n, words in enumerate(word_sets):
        for word in words:
            holders[word].add(n)
    order = list(range(len(where)))
    rng.shuffle(order)
    questions, used_pages = [], set()
    for n in order:
        source, page, sentence = where[n]
        if (source, page) in used_pages:
            continue
        words = content_words(sentence)
        picks = sorted(rng.sample(range(len(words)), QUERY_WORDS))
        query = [words[i] for i in picks]
        together = set.intersection(*(holders[w.lower()] for w in query))
        if together != {n}:  # the same words meet in another sentence (boilerplate, a repeated line)
            continue
        used_pages.add((source, page))
        questions.append({"id": f"k{len(questions):03d}", "question": " ".join(query), "source": source,
                          "page": page, "sentence": sentence})
        if len(questions) == args.count:
            break
    args.out.write_text("".join(json.dumps(q) + "\n" for q in questions), encoding="utf-8")
    print(f"{len(where)} candidate sentences; wrote {len(questions)} questions to {args.out}")


if __name__ == "__main__":
    main()
