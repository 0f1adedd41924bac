"""A tiny dense embedding model built on the spot, so tests exercise fastembed's real loading code offline.

The model is an ONNX graph that looks up each token in a small random table (the "last_hidden_state"
that fastembed mean-pools), with a word-level tokenizer. Words in one synonym group share a row, so
the model has just enough meaning for a test to see dense retrieval find what keywords miss.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

# Words a test can rely on; each group maps to one embedding row.
SYNONYM_GROUPS: tuple[tuple[str, ...], ...] = (
    ("holiday", "vacation", "leave", "pto"),
    ("salary", "pay", "wage", "compensation"),
    ("laptop", "computer", "notebook"),
    ("password", "credential", "login"),
    ("expense", "receipt", "reimbursement"),
    ("travel", "trip", "flight"),
    ("pension", "retirement"),
    ("office", "desk", "workplace"),
)
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]")
MODEL_NAME = "kb-tests/tiny-embedding"  # not a model fastembed knows, so kb registers it as custom


def build_tiny_model(directory: Path, dim: int = 16, seed: int = 0) -> Path:
    """Write model.onnx and the tokenizer files fastembed reads into `directory`; return it."""
    directory.mkdir(parents=True, exist_ok=True)
    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS)}
    rows = {token: i for i, token in enumerate(SPECIAL_TOKENS)}
    for group_row, group in enumerate(SYNONYM_GROUPS, start=len(SPECIAL_TOKENS)):
        for word in group:
            vocab[word] = len(vocab)
            rows[word] = group_row
    table = np.random.default_rng(seed).normal(size=(len(SPECIAL_TOKENS) + len(SYNONYM_GROUPS), dim))
    table[: len(SPECIAL_TOKENS)] *= 0.05  # special tokens barely move the mean, so words decide similarity
    # the embedding table indexed by token id: synonyms point at their group's row
    by_token_id = table[[rows[token] for token in sorted(vocab, key=vocab.__getitem__)]].astype(np.float32)
    _write_onnx(directory / "model.onnx", by_token_id)
    _write_tokenizer(directory, vocab)
    (directory / "config.json").write_text(json.dumps({"pad_token_id": 0, "hidden_size": dim}))
    return directory


def _write_onnx(path: Path, table: np.ndarray) -> None:
    graph = helper.make_graph(
        nodes=[helper.make_node("Gather", ["table", "input_ids"], ["last_hidden_state"], axis=0)],
        name="tiny_embedding",
        inputs=[helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"])],
        outputs=[
            helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "sequence", table.shape[1]])
        ],
        initializer=[numpy_helper.from_array(table, name="table")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8  # readable by every onnxruntime fastembed supports
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _write_tokenizer(directory: Path, vocab: dict[str, int]) -> None:
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    # a leading [CLS] like BERT's, so even an empty text has one token to pool
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A", special_tokens=[("[CLS]", vocab["[CLS]"])]
    )
    tokenizer.save(str(directory / "tokenizer.json"))
    (directory / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 128, "pad_token": "[PAD]"}))
    (directory / "special_tokens_map.json").write_text(
        json.dumps({"pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]"})
    )
