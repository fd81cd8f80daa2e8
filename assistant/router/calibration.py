"""The calibration table: accuracy and latency of each strategy (and model) per difficulty
level, measured on this device with probes built from the person's own notes. Stored as
JSON under ``$ASSISTANT_HOME/router/calibration.json`` with a version and the served model.
The policy prefers a measured cell over its defaults only where the cell has enough samples
and its 95% interval lies wholly above the interval of the strategy the defaults pick."""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional

from assistant.settings import Settings

CALIBRATION_VERSION = 2  # 2: cells carry a 95% interval (version 1 tables are ignored: defaults)
MIN_SAMPLES = 10  # a cell with fewer probes is noise, and the defaults stay in charge
ACCURACY_TIE = 0.02  # accuracies closer than this are a tie, broken by latency


@dataclass(frozen=True)
class Cell:
    """One (difficulty, strategy, model) measurement."""

    difficulty: str
    strategy: str
    model: str
    n: int
    accuracy: float  # mean probe score in [0, 1]
    mean_latency_s: float
    ci95: Optional[tuple[float, float]] = None  # bootstrap interval of the accuracy

    def beats(self, other: "Cell") -> bool:
        """This cell's interval lies wholly above ``other``'s (both measured)."""
        return self.ci95 is not None and other.ci95 is not None and self.ci95[0] > other.ci95[1]


@dataclass
class CalibrationTable:
    """Measured cells, for the served ``model`` on profile ``profile``."""

    model: str
    profile: str
    cells: list[Cell] = field(default_factory=list)
    version: int = CALIBRATION_VERSION
    created: float = field(default_factory=time.time)
    min_samples: int = MIN_SAMPLES
    notes: dict = field(default_factory=dict)  # how it was measured (probes per level, adapter...)

    @staticmethod
    def path_for(settings: Settings) -> Path:
        return settings.layout.calibration

    @classmethod
    def load(cls, settings: Settings) -> Optional["CalibrationTable"]:
        """The stored table, or None when absent, unreadable or of another version."""
        path = cls.path_for(settings)
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        if data.get("version") != CALIBRATION_VERSION:
            return None
        cells = [Cell(**{**cell, "ci95": tuple(cell["ci95"]) if cell.get("ci95") else None})
                 for cell in data.pop("cells", [])]
        return cls(cells=cells, **{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    def save(self, settings: Settings) -> Path:
        """Write atomically (temp file, then rename)."""
        path = self.path_for(settings)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.as_dict(), indent=2))
        os.replace(tmp, path)
        return path

    def as_dict(self) -> dict:
        return {**asdict(self), "cells": [asdict(c) for c in self.cells]}

    @property
    def cut_short(self) -> str:
        """", stopped by the time budget" when the budget ended the run, else "" (for the CLIs' lines)."""
        return ", stopped by the time budget" if self.notes.get("stopped") == "budget" else ""

    def best(self, difficulty: str, usable: Callable[[Cell], bool]) -> Optional[Cell]:
        """The most accurate usable cell with enough samples at ``difficulty``; near-ties
        (within ACCURACY_TIE) go to the faster one."""
        cells = [c for c in self.cells if c.difficulty == difficulty and c.n >= self.min_samples and usable(c)]
        if not cells:
            return None
        top = max(c.accuracy for c in cells)
        return min((c for c in cells if c.accuracy >= top - ACCURACY_TIE), key=lambda c: c.mean_latency_s)

    def cell(self, difficulty: str, strategy: str, model: str) -> Optional[Cell]:
        """The measured cell for this (difficulty, strategy, model) with enough samples, if any."""
        return next((c for c in self.cells if (c.difficulty, c.strategy, c.model) == (difficulty, strategy, model)
                     and c.n >= self.min_samples), None)

    def rows(self) -> list[list[str]]:
        """Table rows for display: difficulty, strategy, model, n, accuracy (95% interval), latency."""
        order = {"general": 0, "easy": 1, "moderate": 2, "hard": 3}
        cells = sorted(self.cells, key=lambda c: (order.get(c.difficulty, 9), c.strategy, c.model))
        return [[c.difficulty, c.strategy, c.model, str(c.n),
                 f"{c.accuracy:.2f}" + (f" [{c.ci95[0]:.2f}, {c.ci95[1]:.2f}]" if c.ci95 else ""),
                 f"{c.mean_latency_s:.2f}"] for c in cells]
