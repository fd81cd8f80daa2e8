"""Export a sentence-transformers model's transformer to ONNX (imports torch).

Run as ``python -m assistant.knowledge.onnx_export SOURCE_DIR OUT.onnx``; the encoder
module does that in a subprocess so that no serving process ever loads torch. The graph
outputs the last hidden state; pooling and normalisation happen in numpy, exactly as the
sentence-transformers Pooling and Normalize modules do.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

OPSET = 17
INPUTS = ["input_ids", "attention_mask", "token_type_ids"]


def export(source: Path, out: Path) -> Path:
    """Write ``out`` atomically (temp file, then rename) from the model in ``source``."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(source), device="cpu", local_files_only=True)
    transformer = model[0].auto_model.eval()

    class LastHiddenState(torch.nn.Module):
        """Positional inputs in a fixed order and one named output, for a stable graph."""

        def __init__(self, backbone: torch.nn.Module):
            super().__init__()
            self.backbone = backbone

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.backbone(input_ids=input_ids, attention_mask=attention_mask,
                                 token_type_ids=token_type_ids).last_hidden_state

    example = torch.ones(2, 8, dtype=torch.long)
    axes = {name: {0: "batch", 1: "sequence"} for name in INPUTS + ["last_hidden_state"]}
    tmp = out.with_suffix(".onnx.tmp")
    with torch.no_grad():
        # the TorchScript exporter: the dynamo one needs onnxscript, which we do not ship
        torch.onnx.export(LastHiddenState(transformer), (example, example, torch.zeros_like(example)), str(tmp),
                          input_names=INPUTS, output_names=["last_hidden_state"], dynamic_axes=axes,
                          opset_version=OPSET, dynamo=False)
    os.replace(tmp, out)
    return out


def main(argv: list[str] | None = None) -> int:
    """CLI entry: ``SOURCE_DIR OUT.onnx``."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m assistant.knowledge.onnx_export SOURCE_DIR OUT.onnx", file=sys.stderr)
        return 2
    export(Path(args[0]), Path(args[1]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
