"""How well kb.claims tells a correct cited sentence from a corrupted one, on XQuAD (English).

    .venv/bin/python bench/claims_check.py [--shares 0.3,0.4,0.5,0.6,0.7]

For every XQuAD question whose answer lies inside one sentence of its paragraph, that sentence with a
marker [1] is a *correct* claim citing the paragraph. Three corruptions of it cite the same paragraph:
- **number**: the answer swapped for another paragraph's numeric answer (when the answer has digits);
- **name**: the answer swapped for another paragraph's capitalised answer (a person, place, team);
- **wrong passage**: the correct sentence citing a different paragraph (the marker points elsewhere).
A fourth, harder correct kind, **restated**, is what a model writes in its own words: the question
turned into a statement with its answer ("How many points did the defense surrender? -> The answer to
how many points the defense surrendered is 308"), built as "<question without ?>: <answer> [1]."; its
swapped twin (**restated, swapped**) carries another paragraph's answer of the same kind.
The check should flag the corrupted ones (target >= 90%) and leave the correct ones (target <= 5%
flagged), at the share of content words `MIN_SHARE` kb uses; other shares are printed to show the
trade-off. Results: printed, and bench/results/claims_check.json.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import SHARED, save, table  # noqa: E402

from kb.claims import MIN_SHARE, check_claims, split_sentences  # noqa: E402

XQUAD = SHARED / "retrieval" / "xquad_squad11_subset" / "xquad.en.json"


def build_cases(seed: int = 7) -> dict[str, list[tuple[str, str]]]:
    """(claim, passage) pairs by kind: correct, number, name, wrong passage."""
    rng = random.Random(seed)
    data = json.loads(XQUAD.read_text())
    items = []  # (paragraph index, context, sentence, answer)
    contexts = []
    for article in data["data"]:
        for paragraph in article["paragraphs"]:
            context = paragraph["context"]
            contexts.append(context)
            spans = split_sentences(context)
            for qa in paragraph["qas"]:
                answer = qa["answers"][0]
                begin, text = answer["answer_start"], answer["text"]
                inside = next(((s, e) for s, e in spans if s <= begin and begin + len(text) <= e), None)
                if inside is not None:
                    items.append((len(contexts) - 1, context, context[inside[0]:inside[1]], text, qa["question"]))
    numbers = [(i, a) for i, _, _, a, _ in items if any(c.isdigit() for c in a)]
    names = [(i, a) for i, _, _, a, _ in items if a[:1].isupper() and not any(c.isdigit() for c in a)]
    cases: dict[str, list[tuple[str, str]]] = {
        "correct": [], "number": [], "name": [], "wrong passage": [], "restated": [], "restated, swapped": []}
    for index, context, sentence, answer, question in items:
        cases["correct"].append((f"{sentence} [1]", context))
        pool = numbers if any(c.isdigit() for c in answer) else names if answer[:1].isupper() else []
        others = [a for i, a in pool if i != index and a.lower() not in context.lower()]
        if others:
            kind = "number" if pool is numbers else "name"
            swapped = rng.choice(others)
            cases[kind].append((f"{sentence.replace(answer, swapped, 1)} [1]", context))
            cases["restated, swapped"].append((f"{question.rstrip(' ?')}: {swapped} [1].", context))
        cases["restated"].append((f"{question.rstrip(' ?')}: {answer} [1].", context))
        other = rng.randrange(len(contexts) - 1)
        other += other >= index
        cases["wrong passage"].append((f"{sentence} [1]", contexts[other]))
    return cases


def flagged_share(pairs: list[tuple[str, str]], share: float) -> float:
    flagged = 0
    for claim, passage in pairs:
        checked = check_claims(claim, {1: passage}, min_share=share)
        flagged += any(not c.supported for c in checked)
    return flagged / len(pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shares", default="0.3,0.4,0.5,0.6,0.7")
    args = parser.parse_args()
    cases = build_cases()
    shares = sorted({float(s) for s in args.shares.split(",")} | {MIN_SHARE})
    rows, results = [], {}
    for share in shares:
        rates = {kind: flagged_share(pairs, share) for kind, pairs in cases.items()}
        results[str(share)] = rates
        mark = " (kb)" if share == MIN_SHARE else ""
        rows.append([f"{share}{mark}"] + [f"{100 * rates[k]:.1f}%" for k in cases])
    print(f"claims: {', '.join(f'{len(p)} {k}' for k, p in cases.items())} (XQuAD en)")
    print("share of claims flagged as unsupported (correct: lower is better; the rest: higher)")
    print(table(["min share"] + list(cases), rows))
    path = save("claims_check", {"min_share": MIN_SHARE, "cases": {k: len(p) for k, p in cases.items()},
                                 "flagged": results})
    print(f"saved {path}")


if __name__ == "__main__":
    main()
