"""The naive LangChain pipeline, run inside bench/.venv-baseline by bench/ingest.py (never imported by kb).

    baseline_langchain.py ingest FILE...     loader -> splitter -> qdrant-client local mode; prints JSON
    baseline_langchain.py pdf-text PDF...    unstructured's fast strategy alone; prints JSON with the texts
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time

for _opt_out in ("DO_NOT_TRACK", "SCARF_NO_ANALYTICS", "UNSTRUCTURED_DISABLE_NOTICE"):
    os.environ.setdefault(_opt_out, "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def offline_spacy() -> None:
    """Without a network unstructured cannot fetch its spaCy model, and then PDF, DOCX and PPTX partitioning
    return nothing or fail (measured: 10 of 117 files ingested). The least a user would do to get it running:
    a blank English spaCy pipeline with a sentence splitter. It is cheaper than the real model (no tagger),
    so it favours the baseline."""
    import spacy
    import unstructured.nlp.tokenize as tokenize

    def blank() -> spacy.language.Language:
        nlp = spacy.blank("en")
        nlp.add_pipe("sentencizer")
        return nlp

    tokenize._load_spacy_model = blank


def ingest(paths: list[str]) -> dict:
    from langchain_core.embeddings import DeterministicFakeEmbedding
    from langchain_qdrant import QdrantVectorStore
    from langchain_text_splitters import RecursiveCharacterTextSplitter
    from langchain_unstructured import UnstructuredLoader
    from qdrant_client import QdrantClient, models

    folder = tempfile.mkdtemp(prefix="kb-bench-baseline-")
    client = QdrantClient(path=folder)
    client.create_collection("docs", vectors_config=models.VectorParams(size=384, distance=models.Distance.COSINE))
    store = QdrantVectorStore(client=client, collection_name="docs", embedding=DeterministicFakeEmbedding(size=384))
    splitter = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200)
    ok, pages, chunks, failed = 0, 0, 0, {}
    started = time.perf_counter()
    for path in paths:
        try:
            documents = UnstructuredLoader(path, strategy="fast").load()
            pieces = splitter.split_documents(documents)
            if not pieces:
                raise ValueError("no text found")
            store.add_documents(pieces)
        except Exception as exc:  # noqa: BLE001 - count it and go on, as kb does
            failed[os.path.basename(path)] = f"{type(exc).__name__}: {str(exc)[:120]}"
            continue
        ok += 1
        chunks += len(pieces)
        pages += max((d.metadata.get("page_number") or 0 for d in documents), default=0)
    seconds = time.perf_counter() - started
    client.close()
    shutil.rmtree(folder, ignore_errors=True)
    return {"seconds": round(seconds, 2), "files": len(paths), "ok": ok, "pages": pages, "chunks": chunks,
            "failed": failed}


def pdf_text(paths: list[str]) -> dict:
    from unstructured.partition.pdf import partition_pdf

    texts, pages = {}, 0
    started = time.perf_counter()
    for path in paths:
        try:
            elements = partition_pdf(path, strategy="fast", languages=["eng"])
        except Exception:  # noqa: BLE001
            texts[path] = None
            continue
        texts[path] = "\n".join(e.text for e in elements)
        pages += max((e.metadata.page_number or 0 for e in elements), default=0)
    return {"seconds": round(time.perf_counter() - started, 2), "pages": pages, "texts": texts}


if __name__ == "__main__":
    command, *files = sys.argv[1:]
    if os.environ.get("BASELINE_AS_WRITTEN") != "1":
        offline_spacy()
    print(json.dumps(ingest(files) if command == "ingest" else pdf_text(files)))
