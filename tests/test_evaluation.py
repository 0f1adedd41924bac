"""`kb eval`: BEIR folders and question sets over files, built in tmp_path, with metrics checked by hand."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from kb.cli import cli
from kb.config import load_settings
from kb.evaluation import (
    DENSE_WEIGHTS,
    DatasetError,
    beir_metrics,
    calibrate_dense_weight,
    choose_weight,
    document_run,
    evaluate_beir,
    evaluate_questions,
    load_beir,
)
from kb.auth import LOCAL_ADMIN
from kb.records import Chunk, Passage, TextRecord
from kb.service import KnowledgeBase
from test_parsing import make_pdf

# Twelve documents, each about one thing, with a word no other document uses.
TOPICS = {
    "d01": ("Parental leave", "Parents receive sixteen weeks of paid parental leave after a birth or adoption."),
    "d02": ("Expense claims", "Submit receipts for reimbursement within thirty days of the purchase."),
    "d03": ("Laptops", "Every engineer gets a laptop; replacements are ordered through the helpdesk."),
    "d04": ("Passwords", "Passwords rotate every ninety days and need a hardware token for administrators."),
    "d05": ("Travel", "Book flights through the travel desk; economy class is the default."),
    "d06": ("Pension", "The company matches pension contributions up to five percent of salary."),
    "d07": ("Office", "The office opens at seven and the kitchen is restocked on Mondays."),
    "d08": ("Onboarding", "New starters meet their onboarding buddy on the first morning."),
    "d09": ("Security", "Report phishing emails to the security team using the report button."),
    "d10": ("Holidays", "Public holidays follow the calendar of the country you work in."),
    "d11": ("Payroll", "Payroll runs on the twenty-fifth; payslips appear in the portal."),
    "d12": ("Volunteering", "Staff may take two volunteering days each year for charity work."),
}
QUERIES = {"q1": "sixteen weeks parental leave", "q2": "hardware token passwords",
           "q3": "phishing report button", "q4": "quarterly board meeting minutes"}
QRELS = {"q1": {"d01": 1}, "q2": {"d04": 1}, "q3": {"d09": 2}, "q4": {"d12": 1}}  # q4 cannot be found


def write_beir(folder: Path, qrels: dict[str, dict[str, int]] = QRELS) -> Path:
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": i, "title": t, "text": x}) + "\n" for i, (t, x) in TOPICS.items())
    )
    (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in QUERIES.items()))
    rows = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t{s}" for q, docs in qrels.items() for d, s in docs.items()]
    (folder / "qrels" / "test.tsv").write_text("\n".join(rows) + "\n")
    return folder


@pytest.fixture()
def settings(tmp_path: Path):
    return load_settings(env={}, secrets_file=tmp_path / "none.toml", data_dir=tmp_path / "unused")


def passage(source: str, seq: int = 0, page: int | None = None) -> Passage:
    chunk = Chunk(f"{source}:1:{seq}", source, 1, seq, source, "text", page_start=page, page_end=page)
    return Passage(chunk, 1.0, 1)


# --- metrics ------------------------------------------------------------------------------------------


def test_metrics_match_their_definitions_on_a_hand_made_ranking():
    qrels = {"a": {"rel": 1}, "b": {"late": 1}}
    ranking_a = ["x", "rel"] + [f"n{i}" for i in range(20)]  # relevant at rank 2
    ranking_b = [f"m{i}" for i in range(10)] + ["late"]  # relevant at rank 11
    runs = {"a": document_run([passage(s) for s in ranking_a]), "b": document_run([passage(s) for s in ranking_b])}
    metrics = beir_metrics(qrels, runs)
    assert metrics["ndcg@10"] == pytest.approx((1 / math.log2(3) + 0) / 2, abs=1e-4)
    assert metrics["mrr@10"] == pytest.approx((1 / 2 + 0) / 2)  # rank 11 is past the cut
    assert metrics["recall@10"] == pytest.approx(0.5)
    assert metrics["recall@100"] == pytest.approx(1.0)


def test_a_document_ranks_where_its_best_chunk_ranks():
    run = document_run([passage("b", 0), passage("a", 0), passage("b", 1), passage("c", 0)])
    assert sorted(run, key=run.__getitem__, reverse=True) == ["b", "a", "c"]


def test_ties_in_passage_scores_keep_kbs_order():
    # trec_eval breaks score ties by document id; scores derived from ranks keep kb's order
    run = document_run([passage("z"), passage("a")])
    assert run["z"] > run["a"]


# --- BEIR folders -------------------------------------------------------------------------------------


def test_beir_scores_a_throwaway_index_built_from_the_corpus(tmp_path: Path, settings):
    folder = write_beir(tmp_path / "tiny")
    report = evaluate_beir(folder, settings)
    assert report["metrics"] == {"ndcg@10": 0.75, "recall@10": 0.75, "recall@100": 0.75, "mrr@10": 0.75}
    assert (report["format"], report["mode"], report["split"]) == ("beir", "keyword", "test")
    assert (report["queries"], report["documents"], report["chunks"]) == (4, 12, 12)
    assert set(report["latency_ms"]) == {"p50", "p95"}
    assert report["settings"]["dense_model"] is None and report["settings"]["bm25_avg_len"] > 0
    assert not (tmp_path / "unused").exists() or not any((tmp_path / "unused").iterdir())


def test_perfect_retrieval_scores_one(tmp_path: Path, settings):
    findable = {q: docs for q, docs in QRELS.items() if q != "q4"}
    report = evaluate_beir(write_beir(tmp_path / "tiny", findable), settings)
    assert set(report["metrics"].values()) == {1.0}


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda f: (f / "qrels" / "test.tsv").unlink(), "qrels/test.tsv is missing"),
        (lambda f: (f / "corpus.jsonl").write_text('{"_id": "d1"}\n'), "corpus.jsonl line 1 is not a JSON object"),
        (lambda f: (f / "qrels" / "test.tsv").write_text("q1\td01\n"), "line 1 is not 'query-id<TAB>corpus-id"),
        (lambda f: (f / "qrels" / "test.tsv").write_text("q9\td01\t1\n"), "judges queries that queries.jsonl lacks"),
    ],
)
def test_a_broken_beir_folder_is_one_clear_error(tmp_path: Path, damage, message):
    folder = write_beir(tmp_path / "tiny")
    damage(folder)
    with pytest.raises(DatasetError, match=message):
        load_beir(folder)


def test_dense_modes_need_a_dense_model(tmp_path: Path, settings):
    with pytest.raises(DatasetError, match="needs a dense model"):
        evaluate_beir(write_beir(tmp_path / "tiny"), settings, mode="hybrid")


# --- text records -------------------------------------------------------------------------------------


def test_records_are_chunked_indexed_and_listed_like_files(tmp_path: Path, settings):
    kb = KnowledgeBase(settings)
    try:
        records = [TextRecord("r1", "Sixteen weeks of parental leave.", "Parental leave"), TextRecord("empty", " ")]
        assert kb.load_records(records) == (1, 1)
        [hit] = kb.search("parental leave", k=5, actor=LOCAL_ADMIN)
        assert hit.chunk.source == "r1" and hit.chunk.title == "Parental leave"
        assert [d.name for d in kb.documents(actor=LOCAL_ADMIN)] == ["r1"] and kb.documents(actor=LOCAL_ADMIN)[0].status == "ok"
        assert kb.index.spec.bm25_avg_len == kb.serving.sparse.avg_len < 32  # measured on the records, not assumed
        with pytest.raises(ValueError, match="empty knowledge base"):
            kb.load_records([TextRecord("r2", "more")])
    finally:
        kb.close()


def test_two_records_with_one_name_are_refused(settings):
    kb = KnowledgeBase(settings)
    try:
        with pytest.raises(ValueError, match="two records are named 'same'"):
            kb.load_records([TextRecord("same", "one"), TextRecord("same", "two")])
    finally:
        kb.close()


# --- question sets over files ---------------------------------------------------------------------------


def write_question_set(tmp_path: Path) -> tuple[Path, Path]:
    files = tmp_path / "files"
    (files / "hr").mkdir(parents=True)
    pages = [  # each page its own passage at 10 words per chunk
        ["Welcome to the staff handbook, which every new starter reads first."],
        ["Annual leave is twenty-five days per calendar year for all staff."],
        ["The pension scheme matches five percent of salary for all staff."],
    ]
    (files / "handbook.pdf").write_bytes(make_pdf(pages))
    (files / "hr" / "travel.md").write_text("# Travel\n\nBook flights through the travel desk in economy class.\n")
    questions = [
        {"question": "How many days of annual leave per year?", "source": "handbook.pdf", "page": 2},
        {"question": "pension salary match", "source": "handbook.pdf", "page": 2},  # it is on page 3
        {"question": "How do I book flights?", "source": "hr/travel.md", "page": None},
        {"question": "Who approves parking permits?", "source": "hr/travel.md"},  # nothing matches
    ]
    path = tmp_path / "questions.jsonl"
    path.write_text("".join(json.dumps(q) + "\n" for q in questions))
    return path, files


def test_question_sets_score_pages_nearby_pages_and_documents(tmp_path: Path, settings):
    questions, files = write_question_set(tmp_path)
    report = evaluate_questions(questions, files, settings.replace(chunk_words=10))
    hits = report["hits"]
    assert hits["page"] == {"questions": 2, "hit@1": 0.5, "hit@3": 0.5, "hit@5": 0.5, "hit@10": 0.5}
    assert hits["page±1"] == {"questions": 2, "hit@1": 1.0, "hit@3": 1.0, "hit@5": 1.0, "hit@10": 1.0}
    assert hits["document"] == {"questions": 4, "hit@1": 0.75, "hit@3": 0.75, "hit@5": 0.75, "hit@10": 0.75}
    assert (report["questions"], report["files"], report["failed_files"]) == (4, 2, {})


def test_a_question_about_a_file_that_is_not_there_is_an_error(tmp_path: Path, settings):
    questions, files = write_question_set(tmp_path)
    questions.write_text(json.dumps({"question": "q", "source": "missing.pdf", "page": 1}) + "\n")
    with pytest.raises(DatasetError, match="names 'missing.pdf', which is not a file in"):
        evaluate_questions(questions, files, settings)


# --- the command --------------------------------------------------------------------------------------


@pytest.fixture()
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("KB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    for name in ("OPENAI_API_KEY", "KB_QDRANT_URL", "KB_EMBEDDING"):
        monkeypatch.delenv(name, raising=False)


def test_kb_eval_prints_json_and_a_table(tmp_path: Path, clean_env):
    folder = write_beir(tmp_path / "tiny")
    result = CliRunner().invoke(cli, ["eval", str(folder), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["metrics"]["ndcg@10"] == 0.75 and report["dataset"] == "tiny"

    table = CliRunner().invoke(cli, ["eval", str(folder)])
    assert table.exit_code == 0 and "ndcg@10 0.7500" in table.stdout and "p50" in table.stdout

    questions, files = write_question_set(tmp_path)
    result = CliRunner().invoke(cli, ["eval", str(questions), "--files", str(files)])
    assert result.exit_code == 0, result.output
    assert "page±1" in result.stdout and "document" in result.stdout


def test_kb_eval_errors_are_one_line(tmp_path: Path, clean_env):
    questions, _ = write_question_set(tmp_path)
    result = CliRunner().invoke(cli, ["eval", str(questions)])
    assert result.exit_code == 2 and "needs --files FOLDER" in result.output
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(cli, ["eval", str(tmp_path / "empty")])
    assert result.exit_code == 1 and result.output.strip().endswith("corpus.jsonl is missing")


# --- hybrid: the dense model's weight is measured, never assumed -----------------------------------------


def ranked(*names: str) -> dict[str, float]:
    return document_run([passage(n) for n in names])


def test_a_dense_model_that_helps_nowhere_is_dropped():
    qrels = {"a": {"x": 1}, "b": {"y": 1}}
    keyword = {"a": ranked("x", "z"), "b": ranked("y", "z")}
    worse = {"a": ranked("z", "x"), "b": ranked("z", "y")}
    runs, chosen = calibrate_dense_weight(qrels, {0.0: keyword, 0.5: worse, 1.0: worse})
    assert chosen == [0.0, 0.0] and runs == keyword
    assert choose_weight(qrels, {0.0: keyword, 0.5: keyword}) == 0.0  # a tie keeps keyword search


def test_each_half_of_the_queries_gets_the_weight_chosen_on_the_other_half():
    qrels = {"a": {"x": 1}, "b": {"x": 1}, "c": {"x": 1}, "d": {"x": 1}}
    miss, hit = ranked("z", "x"), ranked("x", "z")
    # weight 1 helps queries a and c (one fold), weight 0.5 helps b and d (the other)
    runs_by_weight = {0.0: dict.fromkeys(qrels, miss), 0.5: {"a": miss, "b": hit, "c": miss, "d": hit},
                      1.0: {"a": hit, "b": miss, "c": hit, "d": miss}}
    runs, chosen = calibrate_dense_weight(qrels, runs_by_weight)
    assert chosen == [0.5, 1.0]  # fold a, c is ranked with the weight the b, d fold liked, and so on
    assert runs == dict.fromkeys(qrels, miss)  # so neither fold profits from its own answers


def test_hybrid_mode_on_the_tiny_model_reports_keyword_mode_beside_it(tmp_path: Path, settings):
    from tiny_model import MODEL_NAME, build_tiny_model

    folder = tmp_path / "synonyms"
    (folder / "qrels").mkdir(parents=True)
    corpus = {"h": "Holiday allowance is twenty days.", "s": "Salary is paid monthly.",
              "l": "Laptop replacement every three years.", "t": "Travel needs approval."}
    queries = {"1": "vacation allowance", "2": "pay monthly", "3": "notebook replacement", "4": "trip approval"}
    qrels = {"1": "h", "2": "s", "3": "l", "4": "t"}
    (folder / "corpus.jsonl").write_text("".join(json.dumps({"_id": i, "text": t}) + "\n" for i, t in corpus.items()))
    (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in queries.items()))
    (folder / "qrels" / "test.tsv").write_text("".join(f"{q}\t{d}\t1\n" for q, d in qrels.items()))
    model = build_tiny_model(tmp_path / "model")
    dense = settings.replace(embedding=f"fastembed:{MODEL_NAME}", embedding_path=str(model))

    report = evaluate_beir(folder, dense, mode="hybrid")

    assert report["settings"]["dense_model"] == f"fastembed:{MODEL_NAME}"
    assert set(report["by_dense_weight"]) == {str(w) for w in DENSE_WEIGHTS}
    assert report["dense_weight"] in DENSE_WEIGHTS and len(report["dense_weights_cross_fitted"]) == 2
    assert report["metrics"]["ndcg@10"] >= report["keyword_metrics"]["ndcg@10"]
    only_meaning = evaluate_beir(folder, dense, mode="dense")
    assert only_meaning["metrics"]["recall@10"] == 1.0  # the synonyms are all found by meaning alone


def test_a_query_that_finds_nothing_counts_as_zero():
    metrics = beir_metrics({"a": {"x": 1}, "b": {"y": 1}}, {"a": ranked("x"), "b": {}})
    assert metrics == {"ndcg@10": 0.5, "recall@10": 0.5, "recall@100": 0.5, "mrr@10": 0.5}
