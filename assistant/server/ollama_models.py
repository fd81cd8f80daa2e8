"""Our catalog in Ollama's words: model names as ``name:tag``, and the model records of
``/api/tags``, ``/api/ps`` and ``/api/show``."""
from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Optional

from assistant.errors import AssistantError, ModelNotFoundError
from assistant.models.catalog import DEFAULT_ALIAS, CatalogEntry, catalog_entries
from assistant.models.gguf_info import GGUFInfo, read_gguf_info
from assistant.models.memory import MB
from assistant.models.pool import ModelPool
from assistant.settings import Settings

LATEST = "latest"  # the only tag: a catalog name is one file, no variants
# The pool keeps a model until memory is needed for another (or keep_alive: 0), so a
# loaded model has no expiry; Ollama itself reports a far-future time for "forever".
FOREVER = timedelta(days=365 * 100)
# Ollama's details.format: our models are all GGUF files
GGUF = "gguf"


class ModelNames:
    """Catalog names <-> Ollama names. ``smollm2-135m-instruct`` is offered as
    ``smollm2-135m-instruct:latest``; a request may name it with or without the tag. A
    served model given as a file path (``serve --model PATH``) is offered by its file stem."""

    def __init__(self, settings: Settings, pool: ModelPool):
        self.settings = settings
        self.entries: dict[str, CatalogEntry] = {entry.name: entry for entry in catalog_entries(settings)}
        self.default_name = pool.default_name
        self.served_stem = None if self.default_name in self.entries else Path(self.default_name).stem

    def ollama(self, catalog_name: str) -> str:
        """``name:latest`` for a catalog name (or the served file's stem)."""
        if catalog_name == self.default_name and self.served_stem is not None:
            return f"{self.served_stem}:{LATEST}"
        return f"{catalog_name}:{LATEST}"

    def catalog(self, name: str, param: str = "model") -> str:
        """The catalog name an Ollama name means; ModelNotFoundError (404) otherwise. Never
        a path: only names the catalog lists are accepted."""
        base, _, tag = name.strip().rpartition(":") if ":" in name else (name.strip(), "", LATEST)
        if tag == LATEST:
            if base in self.entries:
                return base
            if base == DEFAULT_ALIAS or (self.served_stem is not None and base == self.served_stem):
                return self.default_name
        known = ", ".join(self.ollama(n) for n in self.entries)
        raise ModelNotFoundError(f"model '{name}' not found (known: {known})", param=param)


def parameter_size(count: int) -> str:
    """Ollama's ``parameter_size``: ``135M``, ``1.2B``."""
    return f"{count / 1e9:.1f}B" if count >= 1e9 else f"{count / 1e6:.0f}M"


def details(info: Optional[GGUFInfo]) -> dict:
    """Ollama's ``details`` object, from the GGUF header (empty facts when the file is not at hand)."""
    if info is None:
        return {"parent_model": "", "format": GGUF, "family": "", "families": None, "parameter_size": "",
                "quantization_level": ""}
    return {"parent_model": "", "format": GGUF, "family": info.architecture, "families": [info.architecture],
            "parameter_size": parameter_size(info.parameter_count), "quantization_level": info.quantization}


def file_facts(path: Optional[Path]) -> dict:
    """``size``, ``modified_at`` and ``digest`` of a model file. The digest names this file
    as it is (path, size, modification time), not its content: hashing hundreds of MB on
    every listing would stall a Pi, and clients only compare digests for changes."""
    if path is None:
        return {"size": 0, "modified_at": datetime.now(timezone.utc).isoformat(), "digest": ""}
    stat = path.stat()
    identity = f"{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}".encode()
    return {"size": stat.st_size, "modified_at": datetime.fromtimestamp(stat.st_mtime, timezone.utc).isoformat(),
            "digest": hashlib.sha256(identity).hexdigest()}


def _file_at_hand(entry: CatalogEntry, settings: Settings, pool: ModelPool) -> Optional[Path]:
    """The entry's file if finding it costs nothing: a chunked model is assembled (hundreds
    of MB written) on its first use, not by a listing."""
    engine = pool.loaded_engine(entry.name)
    if engine is not None:
        return engine.model.path
    if entry.source == "assembled":
        return None
    try:
        return entry.path(settings)
    except AssistantError:
        return None


def tag_record(names: ModelNames, entry: CatalogEntry, pool: ModelPool) -> dict:
    """One model of ``/api/tags``; ``description``, ``source`` and ``default`` are extras."""
    path = _file_at_hand(entry, names.settings, pool)
    info = None
    if path is not None:
        try:
            info = read_gguf_info(path)
        except AssistantError:
            path = None
    name = names.ollama(entry.name)
    return {"name": name, "model": name, **file_facts(path), "details": details(info),
            "description": entry.description, "source": entry.source, "default": entry.name == names.default_name}


def list_tags(names: ModelNames, pool: ModelPool) -> list[dict]:
    """Every catalog model (and a served local file), for ``/api/tags``."""
    records = [tag_record(names, entry, pool) for entry in names.entries.values()]
    if names.served_stem is not None:
        local = CatalogEntry(names.default_name, "served file", lambda _s: Path(names.default_name), "local")
        records.append(tag_record(names, local, pool))
    return records


def running_models(names: ModelNames, pool: ModelPool) -> list[dict]:
    """The loaded models, for ``/api/ps``: memory in bytes (all of it in RAM: no VRAM here)."""
    expires_at = (datetime.now(timezone.utc) + FOREVER).isoformat()
    records = []
    for catalog_name, facts in pool.loaded().items():
        engine = pool.loaded_engine(catalog_name)
        if engine is None:  # unloaded meanwhile
            continue
        name = names.ollama(catalog_name)
        records.append({"name": name, "model": name, **file_facts(engine.model.path),
                        "size": int(facts["memory"]["total_mb"] * MB), "details": details(engine.model.info),
                        "expires_at": expires_at, "size_vram": 0, "context_length": engine.n_ctx,
                        "adapter": facts.get("adapter")})
    return records


def _model_info(info: GGUFInfo) -> dict:
    """The header's metadata as Ollama's ``model_info``; long arrays (the vocabulary) are
    not kept by our header reader, so they are null, as Ollama shows them unless verbose."""
    values = {key: (None if isinstance(value, dict) else value) for key, value in info.metadata.items()
              if key != "tokenizer.chat_template"}
    return {**values, "general.parameter_count": info.parameter_count}


def show_record(names: ModelNames, catalog_name: str, info: GGUFInfo, sampling_defaults: dict) -> dict:
    """``/api/show``. ``template`` is the model's Jinja chat template (Ollama shows a Go
    template there); ``parameters`` lists our sampling defaults in Modelfile syntax."""
    parameters = "\n".join(f"{key} {value}" for key, value in sampling_defaults.items())
    modelfile = (f"# served by assistant as {names.ollama(catalog_name)}\nFROM {info.path}\n"
                 + "".join(f"PARAMETER {key} {value}\n" for key, value in sampling_defaults.items()))
    license_text = info.metadata.get("general.license")
    return {"modelfile": modelfile, "parameters": parameters, "template": info.chat_template or "",
            "details": details(info), "model_info": _model_info(info),
            "capabilities": ["completion"], "license": str(license_text) if license_text else "",
            "modified_at": file_facts(info.path)["modified_at"]}
