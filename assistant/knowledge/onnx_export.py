"""Export a sentence-transformers model's transformer to ONNX (imports torch).

Run as ``python -m assistant.knowledge.onnx_export SOURCE_DIR OUT.onnx [--quantize int8]``;
the encoder module does that in a subprocess so that no serving process ever loads torch.
The graph outputs the last hidden state; pooling and normalisation happen in numpy, exactly
as the sentence-transformers Pooling and Normalize modules do.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

OPSET = 17
INPUTS = ["input_ids", "attention_mask", "token_type_ids"]


def export(source: Path, out: Path, quantization: str | None = None) -> Path:
    """Write ``out`` atomically (temp file, then rename) from the model in ``source``;
    ``quantization="int8"`` stores the int8 model (``quantize_int8``) instead of fp32."""
    if quantization not in (None, "int8"):
        raise ValueError(f"unknown quantization {quantization!r}")
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
    if quantization == "int8":
        quantize_int8(tmp, tmp)
    os.replace(tmp, out)
    return out


def quantize_int8(fp32: Path, out: Path) -> Path:
    """Dynamic int8 quantization: weights (MatMuls and the embedding tables) stored as int8
    with a scale per output channel, activations quantized per call. Per-tensor scales cost
    too much (mean cosine to fp32 0.95 on notes; 0.99 per channel). Weights keep 7 bits
    (``reduce_range``) because x86 CPUs without VNNI can saturate 8-bit products, which
    made the worst vector worse there (cosine 0.976 instead of 0.982 on an AVX2 CPU)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    staged = out.with_suffix(".int8.tmp")
    # a loaded model, not a path: given a path, onnxruntime writes its shape-inferred copy
    # beside it, and on a full disk that write fails silently and the error is a corrupt
    # protobuf instead of "No space left" (the copy goes to the temporary folder instead)
    quantize_dynamic(onnx.load(str(fp32)), str(staged), weight_type=QuantType.QInt8, per_channel=True,
                     reduce_range=True)
    os.replace(staged, out)
    return out


def main(argv: list[str] | None = None) -> int:
    """CLI entry: ``SOURCE_DIR OUT.onnx [--quantize int8]``."""
    parser = argparse.ArgumentParser(prog="python -m assistant.knowledge.onnx_export")
    parser.add_argument("source", type=Path, help="the sentence-transformers model folder")
    parser.add_argument("out", type=Path, help="the .onnx file to write")
    parser.add_argument("--quantize", choices=["int8"], help="store the quantized model")
    args = parser.parse_args(argv)
    export(args.source, args.out, args.quantize)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
