"""Offline answers: how close kb's extractive answer comes to the reference, against "just show the top passage".

    .venv/bin/python bench/extractive_f1.py [--sets docugami,xquad,anthropic]

Sets: Docugami's SEC 10-Q questions (the 20 PDFs, 195 questions, long human-reviewed reference answers) and
XQuAD English (240 Wikipedia paragraphs, one .txt file each, 1,190 questions with short SQuAD answers) and the
Anthropic documentation (232 Markdown files, 100 questions with one-sentence reference answers).
Each KB is built with `kb ingest FOLDER` in a fresh KB_DATA_DIR; there is no `kb ask --batch`, and
`kb ask` opens the index on each call, so the questions are asked in this process through the library:
`KnowledgeBase.ask(question, actor=LOCAL_ADMIN)` (what `kb ask` calls), offline defaults (extractive,
KB_TOP_K 5 passages, KB_MIN_RELEVANCE 0.5).

Per set:
- answered: share of answers that are not "The documents do not contain the answer." (Answer.found);
- F1: SQuAD v1.1 token F1 of the answer text (kb's opening note line "(Extractive answer: ...)" and the
  markers [n] removed) against the reference (the best over the references, as SQuAD does); an
  unanswered question scores its "not found" sentence. Over all questions, and over the answered ones;
- reference inside: share whose normalized reference occurs in the normalized answer;
- lengths: mean words of the answer and of the reference; quoted sentences per answered question (its markers);
- top passage: F1 of the first passage's text alone, the "just show the top passage" baseline;
- top-5 reach: share of the reference's content terms (kb's analyzer: stop words out, stemmed) present in
  the five passages given to the answerer; and the share of questions whose reference occurs whole in them.
Docugami references: the "SOURCE(S): ..." line and inline "(SOURCE: ...)" notes are removed first; they
are paragraphs written from whole filings, so F1 against them is low for any extract. Its answers also get
"figures": the share of the reference's figures (three digits or more, as in bench/docugami_pages.py)
that the answer quotes, over the questions whose reference has any.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED, save, table  # noqa: E402
from docugami_pages import figures  # noqa: E402
from qa_common import ingest_and_ask, mean, normalize_answer, tokens_f1  # noqa: E402

DOCUGAMI = SHARED / "rag_qa" / "docugami_sec10q" / "data" / "v1"
XQUAD = SHARED / "retrieval" / "xquad_squad11_subset" / "xquad.en.json"
_NOTE_LINE = re.compile(r"\A\s*\((?:Extractive answer|The language model is not reachable)[^\n]*\)\s*\n")
_MARKERS = re.compile(r"\s*\[\d+\]")
_SOURCE_NOTES = re.compile(r"\(SOURCE[^)]*\)|^\s*SOURCE\(S\):.*$", re.MULTILINE)


def answer_body(text: str) -> str:
    """The answer without kb's opening note line and without its citation markers."""
    return _MARKERS.sub("", _NOTE_LINE.sub("", text)).strip()


def docugami_set(folder: Path) -> tuple[Path, list[dict[str, Any]]]:
    with (DOCUGAMI / "qna_data.csv").open(encoding="utf-8-sig", newline="") as rows:
        questions = [
            {"id": f"q{n:03d}", "question": row["Question"].strip(),
             "references": [_SOURCE_NOTES.sub("", row["Answer"]).strip()]}
            for n, row in enumerate(csv.DictReader(rows))
        ]
    return DOCUGAMI / "docs", questions


def xquad_set(folder: Path) -> tuple[Path, list[dict[str, Any]]]:
    """One .txt file per paragraph, named by article and position, so the KB holds exactly the 240 contexts."""
    data = json.loads(XQUAD.read_text(encoding="utf-8"))["data"]
    questions = []
    for article in data:
        slug = re.sub(r"[^A-Za-z0-9_-]+", "_", article["title"])
        for n, paragraph in enumerate(article["paragraphs"]):
            (folder / f"{slug}_{n:02d}.txt").write_text(paragraph["context"] + "\n", encoding="utf-8")
            for qa in paragraph["qas"]:
                questions.append({"id": qa["id"], "question": qa["question"],
                                  "references": [a["text"] for a in qa["answers"]]})
    return folder, questions


def anthropic_set(folder: Path) -> tuple[Path, list[dict[str, Any]]]:
    """The 232 documentation chunks as Markdown files (as bench/anthropic_docs.py writes them), 100 questions
    with one-sentence reference answers: the closest of these sets to a staff question about a handbook."""
    from anthropic_docs import DEFAULT_DATA, file_name, markdown

    for chunk in json.loads((DEFAULT_DATA / "anthropic_docs.json").read_text(encoding="utf-8")):
        (folder / file_name(chunk["chunk_link"])).write_text(markdown(chunk), encoding="utf-8")
    rows = json.loads((DEFAULT_DATA / "docs_evaluation_dataset.json").read_text(encoding="utf-8"))
    return folder, [{"id": r["id"], "question": r["question"], "references": [r["correct_answer"]]} for r in rows]


SETS = {"docugami": docugami_set, "xquad": xquad_set, "anthropic": anthropic_set}


def measure(name: str) -> dict[str, Any]:
    from kb.auth import LOCAL_ADMIN

    def visit(kb: Any, question: dict[str, Any]) -> tuple[dict[str, Any], float]:
        started = time.perf_counter()
        answer = kb.ask(question["question"], actor=LOCAL_ADMIN)
        took = time.perf_counter() - started
        return score(question, answer, kb.serving.sparse.query_terms), took

    ingest, visits, mode = ingest_and_ask(f"kb-f1-{name}", SETS[name], visit)
    rows = [row for row, _ in visits]
    ask_s = sum(took for _, took in visits)
    answered = [r for r in rows if r["found"]]
    with_figures = [r for r in rows if r["figures_share"] is not None]
    summary = {
        "questions": len(rows), "files_ok": len(ingest.ok), "files_failed": ingest.failed, "answer_mode": mode,
        "ask_seconds": round(ask_s, 1), "ms_per_question": round(1000 * ask_s / len(rows), 1),
        "answered": mean(r["found"] for r in rows),
        "f1": mean(r["f1"] for r in rows),
        "f1_answered": mean(r["f1"] for r in answered),
        "reference_inside_answer": mean(r["inside"] for r in rows),
        "answer_words_mean": mean(r["answer_words"] for r in answered),
        "answer_words_median": statistics.median([r["answer_words"] for r in answered]) if answered else None,
        "sentences_mean": mean(r["sentences"] for r in answered),
        "reference_words_mean": mean(r["reference_words"] for r in rows),
        "top_passage_f1": mean(r["top_f1"] for r in rows),
        "top_passage_words_mean": mean(r["top_words"] for r in rows),
        "top5_reference_terms": mean(r["top5_terms"] for r in rows if r["top5_terms"] is not None),
        "reference_inside_top5": mean(r["inside_top5"] for r in rows),
        "figures_quoted": mean(r["figures_share"] for r in with_figures),
        "questions_with_figures": len(with_figures),
    }
    return {"summary": summary, "per_question": rows}


def score(question: dict[str, Any], answer: Any, terms: Any) -> dict[str, Any]:
    refs = question["references"]
    body = answer_body(answer.text)
    top = answer.passages[0].chunk.text if answer.passages else ""
    top5 = [p.chunk.text for p in answer.passages[:5]]
    top5_terms = set().union(*(terms(text) for text in top5)) if top5 else set()
    ref_terms = terms(refs[0])
    wanted = figures(refs[0])
    normalized_top5 = [normalize_answer(text) for text in top5]
    return {
        "id": question["id"], "found": answer.found, "answer": body,
        "f1": max(tokens_f1(body, ref) for ref in refs),
        "inside": any(normalize_answer(ref) and normalize_answer(ref) in normalize_answer(body) for ref in refs),
        "answer_words": len(body.split()), "reference_words": len(refs[0].split()),
        "sentences": len(_MARKERS.findall(answer.text)),  # one marker per quoted sentence or list
        "top_f1": max(tokens_f1(top, ref) for ref in refs) if top else 0.0, "top_words": len(top.split()),
        "top5_terms": len(ref_terms & top5_terms) / len(ref_terms) if ref_terms else None,
        "inside_top5": any(normalize_answer(ref) in text for ref in refs for text in normalized_top5 if normalize_answer(ref)),
        "figures_share": (len({f for f in wanted if f in figures(body)}) / len(wanted)) if wanted else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sets", default="docugami,xquad,anthropic", help="comma-separated: docugami, xquad, anthropic")
    args = parser.parse_args()
    names = [n.strip() for n in args.sets.split(",") if n.strip()]
    unknown = [n for n in names if n not in SETS]
    if unknown:
        raise SystemExit(f"unknown set {unknown[0]!r}; choose from {', '.join(SETS)}")
    results = {name: measure(name) for name in names}
    labels = [
        ("answered", "answered (not 'do not contain')"), ("f1", "answer F1, all questions"),
        ("f1_answered", "answer F1, answered only"), ("reference_inside_answer", "reference inside answer"),
        ("answer_words_mean", "answer words, mean (answered)"), ("answer_words_median", "answer words, median"),
        ("sentences_mean", "quoted sentences per answer (answered)"),
        ("reference_words_mean", "reference words, mean"), ("top_passage_f1", "top passage alone, F1"),
        ("top_passage_words_mean", "top passage words, mean"), ("top5_reference_terms", "reference terms in top-5 passages"),
        ("reference_inside_top5", "reference inside top-5 passages"), ("figures_quoted", "reference figures quoted"),
        ("ms_per_question", "ms per kb.ask"),
    ]
    print()
    print(table([""] + names, [[label] + [results[n]["summary"][key] for n in names] for key, label in labels]))
    counts = ", ".join(f"{n} {results[n]['summary']['questions_with_figures']}" for n in names)
    print(f"(reference figures quoted: over the questions whose reference has a number of three digits or more: {counts})")
    path = save("extractive_f1", {"command": "bench/extractive_f1.py", "sets": results})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
