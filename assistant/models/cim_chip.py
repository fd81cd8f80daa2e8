"""A programmed simulated chip, as stored under ``$ASSISTANT_HOME/cim/<model>.json``.

A chip is its specification (device, bits, tile, variation, seed, for which model file) plus
what was measured when it was made: the DAC range of every layer (set on text, so part of
the chip), and the programming totals (pulses, verify reads, time, energy). Programming is
deterministic given the seed, so loading the record and programming again realises the very
same conductances: the chip reloads bit-identically without storing ~425M of them.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from assistant.errors import InvalidRequestError
from assistant.layout import HomeLayout

CHIP_VERSION = 1


@dataclass(frozen=True)
class ChipSpec:
    """What a chip is made of; the rest of its ``CIMConfig`` is fixed for language models
    (per-channel scales, output-referred read noise, differential pairs)."""

    model: str
    model_sha256: str
    device: str = "rram"
    weight_bits: int = 4
    dac_bits: int = 8
    adc_bits: Optional[int] = 6
    tile_rows: int = 128
    tile_cols: int = 128
    sigma_rel: float = 0.02
    seed: int = 0

    def cim_config(self):
        """The ``cim_backend`` configuration of this chip (imports torch)."""
        from cim_backend.config import CIMConfig, TileShape
        from cim_backend.devices import get_device
        from cim_backend.errors import CIMConfigError

        try:
            return CIMConfig(device=get_device(self.device).with_sigma(self.sigma_rel), weight_bits=self.weight_bits,
                             dac_bits=self.dac_bits, adc_bits=self.adc_bits, tile=TileShape(self.tile_rows, self.tile_cols),
                             per_channel_scales=True, output_referred_read_noise=True)
        except (CIMConfigError, KeyError, ValueError) as exc:
            raise InvalidRequestError(f"this chip cannot be built: {exc}", param="chip") from exc


@dataclass
class ChipRecord:
    """A chip as stored: its spec, its DAC ranges and what programming it measured."""

    spec: ChipSpec
    input_ranges: dict[str, tuple[float, bool]]  # layer name -> (DAC range, signed input)
    weights: int
    verified_weights: int
    pulses: float
    verify_reads: float
    program_time_s: float
    program_energy_uj: float
    programmed_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    calibration_loss: Optional[float] = None  # set by TSB calibration (not yet built)

    @staticmethod
    def path_for(layout: HomeLayout, model: str) -> Path:
        """Where the chip for ``model`` lives."""
        return layout.cim / f"{model}.json"

    def save(self, layout: HomeLayout) -> Path:
        """Write atomically (temp file, then rename): an interrupted save keeps the old chip."""
        path = self.path_for(layout, self.spec.model)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps({"version": CHIP_VERSION, **asdict(self)}, indent=2))
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, layout: HomeLayout, model: str) -> Optional["ChipRecord"]:
        """The stored chip for ``model``; None when there is none or it is unreadable."""
        try:
            data = json.loads(cls.path_for(layout, model).read_text())
            if data.pop("version", None) != CHIP_VERSION:
                return None
            spec = ChipSpec(**data.pop("spec"))
            ranges = {name: (float(r), bool(s)) for name, (r, s) in data.pop("input_ranges").items()}
            return cls(spec=spec, input_ranges=ranges, **data)
        except (OSError, ValueError, TypeError, KeyError):
            return None

    def summary(self) -> list[tuple[str, str]]:
        """(label, value) lines for ``assistant cim status``."""
        s = self.spec
        share = self.verified_weights / max(self.weights, 1)
        return [
            ("model", f"{s.model} (sha256 {s.model_sha256[:12]})"),
            ("device", f"{s.device}, sigma {s.sigma_rel:g}, seed {s.seed}"),
            ("bits", f"{s.weight_bits}-bit weights (per-channel scales), {s.dac_bits}-bit DAC, "
                     f"{'ideal' if s.adc_bits is None else f'{s.adc_bits}-bit'} ADC, tiles {s.tile_rows}x{s.tile_cols}"),
            ("weights", f"{self.weights:,} on the chip, {self.verified_weights:,} write-verified ({100 * share:.3f}%)"),
            ("programming", f"{self.pulses:,.0f} pulses, {self.verify_reads:,.0f} verify reads, "
                            f"{self.program_time_s:.3f} s, {self.program_energy_uj:,.1f} uJ"),
            ("calibration", "not calibrated" if self.calibration_loss is None else f"loss {self.calibration_loss:.4f}"),
            ("programmed", self.programmed_at),
        ]


def program_chip(settings, spec: ChipSpec, n_threads: int, loaded=None):
    """Realise the chip ``spec`` for its model, store it, and return ``(record, engine)``."""
    from cim_backend.cost import programming_cost

    from assistant.models.catalog import resolve_model
    from assistant.models.cim_engine import CIMEngine

    config = spec.cim_config()
    engine = CIMEngine(resolve_model(spec.model, settings), config, n_ctx=settings.n_ctx, n_threads=n_threads,
                       seed=spec.seed, loaded=loaded)
    report = engine.program
    cost = programming_cost(report.pulses_per_chip, report.verify_reads_per_chip, config.device)
    record = ChipRecord(spec=spec, input_ranges=engine.input_ranges(), weights=report.weights,
                        verified_weights=report.verified_weights, pulses=report.pulses_per_chip,
                        verify_reads=report.verify_reads_per_chip, program_time_s=cost.time_s,
                        program_energy_uj=cost.energy_j * 1e6)
    record.save(settings.layout)
    return record, engine


def load_chip_engine(settings, model: str, n_threads: int, loaded=None):
    """The CIM engine on the stored chip for ``model`` (programmed again from its seed, so
    bit-identical); InvalidRequestError when there is none or the model file changed."""
    from assistant.models.catalog import resolve_model, sha256_file
    from assistant.models.cim_engine import CIMEngine

    resolved = resolve_model(model, settings)
    record = ChipRecord.load(settings.layout, resolved.name)
    if record is None:
        raise InvalidRequestError(f"no programmed chip for {resolved.name}: run 'assistant cim program' first",
                                  param="backend", code="no_chip")
    if sha256_file(resolved.path) != record.spec.model_sha256:
        raise InvalidRequestError(f"{resolved.name}'s file changed since its chip was programmed: "
                                  "run 'assistant cim program' again", param="backend", code="no_chip")
    return CIMEngine(resolved, record.spec.cim_config(), n_ctx=settings.n_ctx, n_threads=n_threads,
                     seed=record.spec.seed, loaded=loaded, input_ranges=record.input_ranges), record
