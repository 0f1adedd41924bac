"""Time from question to first passage shown, and to the first answer token, through `KnowledgeBase.stream`.

    .venv/bin/python bench/first_token.py [--questions 50]

The 18F handbook (Markdown pages) is ingested into a temporary knowledge base the way `kb ingest`
does. Then each question is streamed three ways:
  - extractive (no LLM): time to the passages event, and to the finished answer;
  - LLM: against tests/fake_openai.py, a local OpenAI-compatible server that streams a canned
    answer at once, so what is measured is kb's chain, not a model: time to the passages event,
    to the first token, and to the finished answer;
  - the same server called directly with the openai client (streaming), for the floor: the time
    any client needs to get a first token from it.
The chain's overhead on the first token = kb's time to first token - its time to first passage - the floor.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from common import HANDBOOKS, handbook_queries, percentiles, save, table  # noqa: E402
from fake_openai import FakeOpenAI  # noqa: E402

from kb.auth import LOCAL_ADMIN  # noqa: E402
from kb.config import load_settings  # noqa: E402
from kb.service import KnowledgeBase  # noqa: E402


def stream_times(kb: KnowledgeBase, question: str) -> dict[str, float]:
    started = time.perf_counter()
    times: dict[str, float] = {}
    for event in kb.stream(question, actor=LOCAL_ADMIN):
        now = (time.perf_counter() - started) * 1000
        if event.kind == "passages":
            times.setdefault("first_passage", now)
        elif event.kind == "token":
            times.setdefault("first_token", now)
        else:
            times["answer"] = now
    return times


def direct_first_token(server: FakeOpenAI, question: str) -> float:
    from openai import OpenAI

    client = OpenAI(api_key="bench", base_url=server.base_url)
    started = time.perf_counter()
    for part in client.chat.completions.create(model="bench", messages=[{"role": "user", "content": question}],
                                               stream=True):
        if part.choices and part.choices[0].delta.content:
            return (time.perf_counter() - started) * 1000
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=50)
    args = parser.parse_args()
    pages = HANDBOOKS / "18f-handbook" / "pages"
    data = Path(tempfile.mkdtemp(prefix="kb-bench-ttft-"))
    server = FakeOpenAI(reply="Leave is requested in the HR system [1]. Your supervisor approves it [2].").start()
    try:
        base = load_settings().replace(data_dir=data, qdrant_url="", embedding="", openai_api_key="", openai_base_url="")
        kb = KnowledgeBase(base)
        started = time.perf_counter()
        kb.submit_paths([pages])
        kb.work_queue()
        ingest_s = time.perf_counter() - started
        kb.close()
        paragraphs = [p.read_text(errors="replace") for p in sorted(pages.rglob("*.md"))]
        questions = handbook_queries([" ".join(t.split()) for t in paragraphs if len(t.split()) > 20], args.questions)
        results = {}
        for mode, settings in (
            ("extractive", base),
            ("llm", base.replace(openai_api_key="bench", openai_base_url=server.base_url, llm_model="bench")),
        ):
            kb = KnowledgeBase(settings)
            try:
                kb.open_index()
                stream_times(kb, questions[0])  # warm-up: imports and first connection are paid once per process
                samples = [stream_times(kb, q) for q in questions]
            finally:
                kb.close()
            results[mode] = {key: percentiles([s[key] for s in samples if key in s])
                             for key in ("first_passage", "first_token", "answer") if any(key in s for s in samples)}
        direct_first_token(server, questions[0])
        floor = [direct_first_token(server, q) for q in questions]
        results["direct_client"] = {"first_token": percentiles(floor)}
    finally:
        server.stop()
        shutil.rmtree(data, ignore_errors=True)

    llm = results["llm"]
    overhead = round(llm["first_token"]["p50"] - llm["first_passage"]["p50"] - results["direct_client"]["first_token"]["p50"], 2)
    rows = [
        ["extractive (no LLM)", results["extractive"]["first_passage"]["p50"], results["extractive"]["first_passage"]["p95"],
         None, None, results["extractive"]["answer"]["p50"], results["extractive"]["answer"]["p95"]],
        ["LLM (local fake server)", llm["first_passage"]["p50"], llm["first_passage"]["p95"], llm["first_token"]["p50"],
         llm["first_token"]["p95"], llm["answer"]["p50"], llm["answer"]["p95"]],
        ["openai client alone, same server", None, None, results["direct_client"]["first_token"]["p50"],
         results["direct_client"]["first_token"]["p95"], None, None],
    ]
    print(f"18F handbook ingested in {ingest_s:.1f} s; {len(questions)} questions; milliseconds")
    print(table(["path", "first passage p50", "p95", "first token p50", "p95", "answer done p50", "p95"], rows))
    print(f"chain overhead on the first token (p50): {overhead} ms")
    path = save("first_token", {"command": " ".join(["bench/first_token.py", *sys.argv[1:]]), "questions": len(questions),
                                "ingest_seconds": round(ingest_s, 1), "results": results,
                                "chain_overhead_first_token_ms_p50": overhead})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
