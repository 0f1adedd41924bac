"""Declines: how often kb says "The documents do not contain the answer." when they do not.

    .venv/bin/python bench/declines.py [--sets offtopic,docugami_no_apple,xquad_held_out] [--dump FOLDER]

Sets (each asked of a fresh KB built with `kb ingest FOLDER`, through `KnowledgeBase.ask` as `kb ask` does):
- offtopic: the 21 OFF_TOPIC questions below (general knowledge, chit-chat, requests), written for this
  bench (the issue's held-out 21 are not in the repository), asked of the 18F handbook (251 Markdown pages
  of a US government team's HR and engineering handbook) and of the 20 docugami 10-Q PDFs;
- docugami_no_apple: the docugami questions whose source documents are only Apple's filings, asked of
  an index of the other 16 filings (Amazon, Intel, Microsoft, NVIDIA): in-domain (10-Q wording: net sales,
  gross margin, risk factors) but unanswerable, since the company asked about is absent;
- xquad_held_out: the XQuAD English questions of every 4th article, asked of an index of the other
  articles' paragraphs: Wikipedia questions whose paragraphs are not in the index.
Answerable questions are measured by bench/extractive_f1.py (answered share on docugami and XQuAD).

With a language model: measured only when OPENAI_API_KEY and KB_LLM_MODEL are set; otherwise reported as
not measured. `--dump FOLDER` pickles each question's passages (for trying decline rules offline).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import pickle
import re
import shutil
import sys
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import HANDBOOKS, SHARED, save, table  # noqa: E402
from qa_common import ingest_and_ask, mean  # noqa: E402

DOCUGAMI = SHARED / "rag_qa" / "docugami_sec10q" / "data" / "v1"
XQUAD = SHARED / "retrieval" / "xquad_squad11_subset" / "xquad.en.json"

OFF_TOPIC = [
    "What is the capital of Mongolia?",
    "Who won the 2018 FIFA World Cup?",
    "How do I bake sourdough bread?",
    "What is the boiling point of water on Mount Everest?",
    "Can you recommend a good science fiction novel?",
    "How far is the Moon from the Earth?",
    "How many legs does a spider have?",
    "What is the weather forecast for Paris tomorrow?",
    "Who painted the Mona Lisa?",
    "How do I fix a flat tyre on my bicycle?",
    "What is the square root of 144?",
    "How do you say good morning in Japanese?",
    "What are the rules of cricket?",
    "Which planet has the most moons?",
    "How do I teach my puppy to sit?",
    "What is a good recipe for lasagna?",
    "Who was the first person to walk on the Moon?",
    "What is the population of Brazil?",
    "How tall is the Eiffel Tower?",
    "Write a poem about autumn.",
    "What happens at the end of Hamlet?",
]

Questions = list[dict[str, Any]]


def docugami_pdfs(folder: Path, keep: Callable[[str], bool]) -> Path:
    for pdf in sorted((DOCUGAMI / "docs").glob("*.pdf")):
        if keep(pdf.name):
            shutil.copyfile(pdf, folder / pdf.name)
    return folder


def offtopic_handbook(folder: Path) -> tuple[Path, Questions]:
    return HANDBOOKS / "18f-handbook", [{"id": f"o{n:02d}", "question": q} for n, q in enumerate(OFF_TOPIC)]


def offtopic_filings(folder: Path) -> tuple[Path, Questions]:
    return DOCUGAMI / "docs", [{"id": f"o{n:02d}", "question": q} for n, q in enumerate(OFF_TOPIC)]


def docugami_no_apple(folder: Path) -> tuple[Path, Questions]:
    with (DOCUGAMI / "qna_data.csv").open(encoding="utf-8-sig", newline="") as rows:
        questions = [
            {"id": f"q{n:03d}", "question": row["Question"].strip()}
            for n, row in enumerate(csv.DictReader(rows))
            if re.fullmatch(r"\*(?:\d{4} Q\d )?AAPL\*", row["Source Docs"].strip())
        ]
    return docugami_pdfs(folder, lambda name: "AAPL" not in name), questions


def xquad_held_out(folder: Path) -> tuple[Path, Questions]:
    data = json.loads(XQUAD.read_text(encoding="utf-8"))["data"]
    questions = []
    for a, article in enumerate(data):
        slug = re.sub(r"[^A-Za-z0-9_-]+", "_", article["title"])
        for n, paragraph in enumerate(article["paragraphs"]):
            if a % 4 == 0:  # held out: its questions are asked, its paragraphs are not indexed
                questions += [{"id": qa["id"], "question": qa["question"]} for qa in paragraph["qas"]]
            else:
                (folder / f"{slug}_{n:02d}.txt").write_text(paragraph["context"] + "\n", encoding="utf-8")
    return folder, questions


SETS: dict[str, Callable[[Path], tuple[Path, Questions]]] = {
    "offtopic_handbook": offtopic_handbook, "offtopic_filings": offtopic_filings,
    "docugami_no_apple": docugami_no_apple, "xquad_held_out": xquad_held_out,
}
GROUPS = {"offtopic": ["offtopic_handbook", "offtopic_filings"], "docugami_no_apple": ["docugami_no_apple"],
          "xquad_held_out": ["xquad_held_out"]}


def measure(name: str, dump: Path | None) -> dict[str, Any]:
    from kb.auth import LOCAL_ADMIN

    ingest, asked, mode = ingest_and_ask(
        f"kb-declines-{name}", SETS[name], lambda kb, q: (q, kb.ask(q["question"], actor=LOCAL_ADMIN))
    )
    questions = [q for q, _ in asked]
    answers = [a for _, a in asked]
    if dump is not None:
        dump.mkdir(parents=True, exist_ok=True)
        with (dump / f"{name}.pickle").open("wb") as out:
            pickle.dump([(q["question"], a.passages) for q, a in zip(questions, answers)], out)
    rows = [{"id": q["id"], "question": q["question"], "declined": not a.found, "answer": a.text[:300]}
            for q, a in zip(questions, answers)]
    declined = sum(r["declined"] for r in rows)
    summary = {"questions": len(rows), "declined": declined, "declined_share": mean(r["declined"] for r in rows),
               "answer_mode": mode, "files_ok": len(ingest.ok), "files_failed": len(ingest.failed)}
    return {"summary": summary, "per_question": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sets", default=",".join(GROUPS), help=f"comma-separated: {', '.join(GROUPS)}")
    parser.add_argument("--dump", type=Path, help="pickle each question's passages into this folder")
    args = parser.parse_args()
    groups = [g.strip() for g in args.sets.split(",") if g.strip()]
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        raise SystemExit(f"unknown set {unknown[0]!r}; choose from {', '.join(GROUPS)}")
    results = {name: measure(name, args.dump) for g in groups for name in GROUPS[g]}
    llm = "measured" if os.environ.get("OPENAI_API_KEY") and os.environ.get("KB_LLM_MODEL") else None
    print()
    print(table(["set", "questions", "declined offline", "share", "with an LLM"], [
        [name, r["summary"]["questions"], r["summary"]["declined"], r["summary"]["declined_share"],
         llm or "not measured: no LLM here"] for name, r in results.items()
    ]))
    for name, r in results.items():
        kept = [row["question"] for row in r["per_question"] if not row["declined"]]
        if name.startswith("offtopic") and kept:
            print(f"{name}: answered (not declined): {kept}")
    path = save("declines", {"command": "bench/declines.py", "llm": llm or "not measured: no LLM here",
                             "sets": results})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
