"""A programmed simulated chip, as stored under ``$ASSISTANT_HOME/cim/<model>.json``.

A chip is its specification (device, bits, tile, variation, seed, for which model file) plus
what was measured when it was made: the DAC and ADC range of every layer (set on text, so
part of the chip), the programming totals (pulses, verify reads, time, energy) and, once
``cim calibrate`` ran, the Tiny Shared Block (its ``A``, ``b`` and site ranges). Programming is
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

CHIP_VERSION = 2  # 2 added adc_ranges and tsb; a version-1 record still loads (no TSB, ADC ranges again)


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
    weights: int  # the backbone's (the TSB's width**2 come on top, all write-verified)
    verified_weights: int
    pulses: float
    verify_reads: float
    program_time_s: float
    program_energy_uj: float
    programmed_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    calibration_loss: Optional[float] = None  # validation KL to the digital model, nats/token, after calibration
    adc_ranges: dict[str, float] = field(default_factory=dict)
    tsb: Optional[dict] = None  # see assistant.models.cim_tsb.tsb_state
    calibrated_at: Optional[str] = None
    calibration_source: Optional[str] = None  # "notes" or "shipped"

    def measurements(self):
        """The chip's measured ranges and TSB, as the engine takes them."""
        from assistant.models.cim_engine import ChipMeasurements

        return ChipMeasurements(self.input_ranges, self.adc_ranges, self.tsb)

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
            if data.pop("version", None) not in (1, CHIP_VERSION):
                return None
            spec = ChipSpec(**data.pop("spec"))
            ranges = {name: (float(r), bool(s)) for name, (r, s) in data.pop("input_ranges").items()}
            return cls(spec=spec, input_ranges=ranges, **data)
        except (OSError, ValueError, TypeError, KeyError):
            return None

    def summary(self) -> list[tuple[str, str]]:
        """(label, value) lines for ``assistant cim status``."""
        s = self.spec
        tsb = self.tsb["width"] ** 2 if self.tsb else 0
        share = (self.verified_weights + tsb) / max(self.weights + tsb, 1)
        return [
            ("model", f"{s.model} (sha256 {s.model_sha256[:12]})"),
            ("device", f"{s.device}, sigma {s.sigma_rel:g}, seed {s.seed}"),
            ("bits", f"{s.weight_bits}-bit weights (per-channel scales), {s.dac_bits}-bit DAC, "
                     f"{'ideal' if s.adc_bits is None else f'{s.adc_bits}-bit'} ADC, tiles {s.tile_rows}x{s.tile_cols}"),
            ("weights", f"{self.weights + tsb:,} on the chip, {self.verified_weights + tsb:,} write-verified "
                        f"({100 * share:.4f}%)"),
            ("programming", f"{self.pulses:,.0f} pulses, {self.verify_reads:,.0f} verify reads, "
                            f"{self.program_time_s:.3f} s, {self.program_energy_uj:,.1f} uJ"),
            ("calibration", "no TSB (run 'assistant cim calibrate')" if self.tsb is None else
             f"TSB {self.tsb['width']}x{self.tsb['width']} ({self.tsb['width'] ** 2:,} write-verified weights) on "
             f"{self.calibration_source} text, validation KL to digital {self.calibration_loss:.4f} nats/token, "
             f"{self.calibrated_at}"),
            ("programmed", self.programmed_at),
        ]


def program_chip(settings, spec: ChipSpec, n_threads: int, loaded=None):
    """Realise the chip ``spec`` for its model, store it, and return ``(record, engine)``."""
    from cim_backend.cost import programming_cost

    from assistant.models.catalog import resolve_model
    from assistant.models.cim_engine import CIMEngine

    config = spec.cim_config()
    engine = CIMEngine(resolve_model(spec.model, settings), config, n_ctx=settings.n_ctx, n_threads=n_threads,
                       seed=spec.seed, loaded=loaded, tokenizer_cache=settings.layout.tokenizers)
    report = engine.program
    cost = programming_cost(report.pulses_per_chip, report.verify_reads_per_chip, config.device)
    measured = engine.measurements()
    record = ChipRecord(spec=spec, input_ranges=measured.input_ranges, adc_ranges=measured.adc_ranges,
                        weights=report.weights,
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
                     seed=record.spec.seed, loaded=loaded, measured=record.measurements(),
                     tokenizer_cache=settings.layout.tokenizers), record


def save_calibration(settings, record: ChipRecord, engine, val_kl: float, source: str) -> ChipRecord:
    """Store the engine's calibrated TSB in ``record`` (atomically, as every chip write)."""
    from dataclasses import replace

    updated = replace(record, tsb=engine.measurements().tsb, calibration_loss=val_kl, calibration_source=source,
                      calibrated_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    updated.save(settings.layout)
    return updated


# The chip engine's memory per parameter of the model, in bytes: the float32 model plus, per
# weight on the chip, its conductances (4 devices: 2 slices x 2 polarities), their targets and
# the loading's leftovers. Measured: SmolLM2-135M's engine (6-bit ADC) grew RSS by 5,208 MB
# (134.5M parameters: 38.7 bytes each) over a process that had imported torch (252 MB).
CIM_BYTES_PER_PARAMETER = 40
TORCH_RUNTIME_MB = 300.0


def cim_memory_estimate(resolved, n_ctx: int):
    """What the CIM engine for ``resolved`` will take (a MemoryEstimate for the guard)."""
    from assistant.models.memory import MB, MemoryEstimate

    weights = resolved.info.parameter_count * CIM_BYTES_PER_PARAMETER / MB
    return MemoryEstimate(weights_mb=weights, kv_cache_mb=0.0, compute_mb=0.0, overhead_mb=TORCH_RUNTIME_MB,
                          n_ctx=n_ctx)


def load_served_chip(settings, profile):
    """The CIM engine on the served model's stored chip, after the memory guard agreed
    (ModelTooLargeError otherwise; InvalidRequestError without a chip)."""
    from assistant.models.catalog import resolve_model
    from assistant.models.memory import check_fits

    resolved = resolve_model(settings.model, settings)
    if ChipRecord.load(settings.layout, resolved.name) is None:
        raise InvalidRequestError(f"no programmed chip for {resolved.name}: run 'assistant cim program' first",
                                  param="backend", code="no_chip")
    check_fits(f"{resolved.name} on the simulated chip", cim_memory_estimate(resolved, settings.n_ctx or 2048), profile)
    engine, _ = load_chip_engine(settings, settings.model, settings.n_threads or profile.effective_threads())
    return engine
