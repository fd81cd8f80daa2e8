"""The one object that names what lives under ``$ASSISTANT_HOME``.

Every part asks ``settings.layout`` for its folder or file instead of spelling the path,
so moving a folder is a change here and nowhere else. Nothing here touches the disk.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class HomeLayout:
    """Folders and files of one data directory (``home``)."""

    home: Path

    @property
    def knowledge(self) -> Path:
        """The notes index: SQLite, vector files, the write lock (owned by ``knowledge``)."""
        return self.home / "knowledge"

    @property
    def index_database(self) -> Path:
        """The index's SQLite file; only ``assistant.knowledge`` opens it."""
        return self.knowledge / "index.sqlite"

    @property
    def encoders(self) -> Path:
        """Exported ONNX sentence encoders, one folder per encoder name."""
        return self.knowledge / "encoders"

    @property
    def adapters(self) -> Path:
        """Versioned GGUF LoRA adapters."""
        return self.home / "adapters"

    @property
    def active_adapter_marker(self) -> Path:
        """``{"active": NAME}``: the adapter the server loads."""
        return self.adapters / "active.json"

    @property
    def models(self) -> Path:
        """Assembled and pulled GGUF models (the catalog's local part)."""
        return self.home / "models"

    @property
    def model_variants(self) -> Path:
        """Requantized (lower-bit) variants of catalog models, made on this device."""
        return self.models / "variants"

    @property
    def tokenizers(self) -> Path:
        """Tokenizers converted from GGUF files for torch (training, the CIM engine), one
        folder per model file's sha256: converting takes seconds, reading one back does not."""
        return self.models / "tokenizers"

    @property
    def router(self) -> Path:
        """The router's measurements."""
        return self.home / "router"

    @property
    def calibration(self) -> Path:
        """The calibration table the router prefers over its defaults."""
        return self.router / "calibration.json"

    @property
    def reports(self) -> Path:
        """Benchmark and study reports (CSV, Markdown, plots)."""
        return self.home / "reports"

    @property
    def study_work(self) -> Path:
        """The trade-off study's own home (index copy, variants, its adapters), so the
        person's adapters and catalog stay untouched."""
        return self.reports / "study-work"

    @property
    def cim(self) -> Path:
        """Programmed simulated NVCIM chips."""
        return self.home / "cim"
