"""Configuration dataclasses: how a layer is mapped onto crossbars and which non-idealities apply.

A :class:`CIMConfig` composes a :class:`~cim_backend.devices.DeviceModel` (which itself holds a
variation strategy), a :class:`TileShape` and a :class:`WriteVerifyConfig`. Every non-ideality
has its own switch so that, with all of them off (:func:`ideal_config`), a CIM layer computes
exactly what the digital layer computes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from .devices import RRAM, DeviceModel, get_device
from .errors import CIMConfigError


@dataclass(frozen=True)
class TileShape:
    """Size of one physical crossbar array (word lines x bit lines)."""

    rows: int = 128
    cols: int = 128

    def __post_init__(self) -> None:
        if self.rows < 1 or self.cols < 1:
            raise CIMConfigError(f"tile must be at least 1x1, got {self.rows}x{self.cols}")


@dataclass(frozen=True)
class WriteVerifyConfig:
    """Iterative program-and-verify of one device.

    Each iteration reads the device (with read noise) and, if the read value is further than
    ``tolerance`` from the target, applies a corrective pulse whose landing spread is
    ``step_sigma_factor`` times the device's one-shot variation. The default tolerance is
    ``sqrt(3) * sigma / sigma_reduction`` so that the accepted residual, roughly uniform in
    ``[-tol, tol]``, has std ``sigma / sigma_reduction`` (the 10x reduction assumed in
    SWIM, Yan et al. DAC 2022, and TSB).
    """

    sigma_reduction: float = 10.0
    tolerance_rel: float | None = None
    step_sigma_factor: float = 0.5
    max_pulses: int = 40

    def tolerance(self, sigma_rel: float) -> float:
        """Acceptance half-width in normalised conductance units."""
        if self.tolerance_rel is not None:
            return self.tolerance_rel
        return math.sqrt(3.0) * sigma_rel / self.sigma_reduction


@dataclass(frozen=True)
class CIMConfig:
    """Everything that decides how a layer runs on the simulated accelerator.

    ``weight_bits`` counts magnitude bits (the sign uses a differential pair or a digital sign
    bit); ``None`` switches weight quantization off, which requires variation off too because
    bit slices are then undefined. ``dac_bits``/``adc_bits`` ``None`` mean ideal converters.
    ``adc_range`` is the ADC full scale as a fraction of a tile column's largest possible
    partial sum (designs clip well below that worst case).

    ``clip_conductance`` keeps every programmed conductance inside the device's range
    (normalised ``[0, 1]``): a real device cannot be programmed below ``G_min`` or above
    ``G_max``. Switch it off only to compare against the unbounded Gaussian model of
    :func:`~cim_backend.devices.weight_sigma_formula`.

    ``stuck_on_rate`` / ``stuck_off_rate`` are the fractions of devices stuck at ``G_max``
    (stuck-on, SA1, normalised ``g = 1``) or at ``G_min`` (stuck-off, SA0, ``g = 0``) whatever
    they are programmed to; write-verify cannot move them.

    ``per_channel_scales`` gives every output channel (a row of ``W``, a bit line group) its
    own scale ``w_max``, applied digitally after the ADC, instead of one per tensor: a
    language model's linear layers hold a few outlier rows that would otherwise leave the
    other rows only a level or two of 4-bit weights.

    ``output_referred_read_noise`` draws read noise on the column currents (per output, with
    the variance ``sigma^2 * sum_i x_i^2`` that independent device read errors give) instead
    of a fresh value for every device on every forward: the same distribution for each input
    vector at a cost proportional to the outputs, not to the weights (a language model's
    ~425M devices per token). Unlike device-referred noise, the samples of one batch then get
    independent noise (one read per input vector, as in token-by-token decoding). It needs
    differential pairs, where every row holds a device on every column.
    """

    device: DeviceModel = RRAM
    weight_bits: int | None = 4
    differential: bool = True
    tile: TileShape = field(default_factory=TileShape)
    dac_bits: int | None = 8
    adc_bits: int | None = None
    adc_range: float = 0.25
    programming_variation: bool = True
    read_noise: bool = True
    write_verify: WriteVerifyConfig = field(default_factory=WriteVerifyConfig)
    clip_conductance: bool = True
    stuck_on_rate: float = 0.0
    stuck_off_rate: float = 0.0
    per_channel_scales: bool = False
    output_referred_read_noise: bool = False

    def __post_init__(self) -> None:
        m = self.device.bits_per_device
        if self.output_referred_read_noise and not self.differential:
            raise CIMConfigError("output_referred_read_noise needs differential pairs (a device on every column)")
        for name in ("stuck_on_rate", "stuck_off_rate"):
            rate = getattr(self, name)
            if not 0.0 <= rate <= 1.0:
                raise CIMConfigError(f"{name} must be in [0, 1], got {rate}")
        if self.stuck_on_rate + self.stuck_off_rate > 1.0:
            raise CIMConfigError(
                f"stuck_on_rate + stuck_off_rate must be <= 1, got {self.stuck_on_rate + self.stuck_off_rate}"
            )
        if self.weight_bits is not None:
            if self.weight_bits < 1 or self.weight_bits % m:
                raise CIMConfigError(f"weight_bits={self.weight_bits} must be a positive multiple of bits_per_device={m}")
        elif self.programming_variation or self.read_noise or self.has_stuck_faults:
            raise CIMConfigError("device noise and faults need quantized weights (weight_bits) to define bit slices")
        for name in ("dac_bits", "adc_bits"):
            bits = getattr(self, name)
            if bits is not None and bits < 1:
                raise CIMConfigError(f"{name} must be >= 1 or None, got {bits}")
        if not 0.0 < self.adc_range <= 1.0:
            raise CIMConfigError(f"adc_range must be in (0, 1], got {self.adc_range}")

    @property
    def slices(self) -> int:
        """Devices per weight per polarity (``weight_bits / bits_per_device``), 1 if unquantized."""
        return 1 if self.weight_bits is None else self.weight_bits // self.device.bits_per_device

    @property
    def polarities(self) -> int:
        """2 for differential pairs (G+ and G-), 1 for a digital sign bit."""
        return 2 if self.differential else 1

    @property
    def clips(self) -> bool:
        """True when programmed conductances are clipped to ``[0, 1]``.

        Only quantized mappings are clipped: the unquantized (ideal) mapping stores ``|w|``
        itself on one pseudo-device, which is not a normalised conductance.
        """
        return self.clip_conductance and self.weight_bits is not None

    @property
    def has_stuck_faults(self) -> bool:
        """True when some devices are stuck (either rate above 0)."""
        return self.stuck_on_rate > 0.0 or self.stuck_off_rate > 0.0

    @property
    def sigma_rel(self) -> float:
        """Programming variation in force (0 when switched off)."""
        return self.device.sigma_rel if self.programming_variation else 0.0

    @property
    def read_sigma_rel(self) -> float:
        """Read noise in force (0 when switched off)."""
        return self.device.read_noise_rel if self.read_noise else 0.0

    def with_sigma(self, sigma_rel: float) -> "CIMConfig":
        """Copy with another programming variation."""
        return replace(self, device=self.device.with_sigma(sigma_rel))


def ideal_config(base: CIMConfig | None = None) -> CIMConfig:
    """``base`` with every non-ideality switched off: CIM results equal the digital layer."""
    base = base or CIMConfig()
    return replace(
        base, weight_bits=None, dac_bits=None, adc_bits=None, programming_variation=False, read_noise=False,
        stuck_on_rate=0.0, stuck_off_rate=0.0,
    )


def _preset_table() -> dict[str, CIMConfig]:
    return {
        # The reproduction's setting: 4-bit weights on 2-bit RRAM, differential pairs.
        "rram-4b": CIMConfig(device=get_device("rram"), weight_bits=4),
        "rram-8b": CIMConfig(device=get_device("rram"), weight_bits=8),
        "fefet-4b": CIMConfig(device=get_device("fefet"), weight_bits=4),
        "pcm-8b": CIMConfig(device=get_device("pcm"), weight_bits=8, tile=TileShape(256, 256)),
        "rram-4b-adc": CIMConfig(device=get_device("rram"), weight_bits=4, adc_bits=6),
        "ideal": ideal_config(),
    }


PRESETS: dict[str, CIMConfig] = _preset_table()


def get_preset(name: str) -> CIMConfig:
    """Look up a named configuration (see ``PRESETS``)."""
    try:
        return PRESETS[name]
    except KeyError:
        raise CIMConfigError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}") from None
