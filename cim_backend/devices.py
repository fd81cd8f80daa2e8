"""Non-volatile memory (NVM) device models: levels, conductance range, variation, read noise.

Conventions used everywhere in ``cim_backend``:

* A device stores ``bits_per_device`` bits, i.e. ``2**m`` conductance levels spread evenly
  between ``g_min_us`` and ``g_max_us`` (micro-siemens).
* Conductances are handled *normalised* to the range: ``g_norm = (G - G_min) / (G_max - G_min)``
  lies in ``[0, 1]``; level ``k`` of ``L = 2**m - 1`` sits at ``k / L``.
* ``sigma_rel`` (programming variation) and ``read_noise_rel`` are standard deviations in those
  normalised units, i.e. *relative to the conductance range*. This is the convention of the
  variation model used by this line of research (Yan et al., "Uncertainty modeling of emerging
  device based computing-in-memory neural accelerators", ICCAD 2021; Qin et al., TSB, 2024):
  every device lands off its target by ``N(0, sigma)`` of the range.

A weight of ``N`` bits stored on ``N/m`` devices (slice ``i`` carrying bits ``i*m..i*m+m-1``)
then deviates by ``sigma * max|W| * sqrt(sum_i 4**(i*m)) / sum_i 2**(i*m)``
(:func:`weight_sigma_formula`).

What happens to the conductances after programming (PCM drift, RRAM relaxation) lives in
:mod:`cim_backend.drift`; :meth:`DeviceModel.drift_model` finds a device's model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Protocol

import torch

from .errors import CIMConfigError


class VariationModel(Protocol):
    """Strategy giving the programming-variation std of a device at a given target level."""

    name: str

    def level_sigma(self, g_norm: torch.Tensor, sigma_rel: float) -> torch.Tensor:
        """Std (normalised units) of a device programmed to normalised conductance ``g_norm``."""
        ...


@dataclass(frozen=True)
class UniformVariation:
    """Every level is equally noisy: ``N(0, sigma_rel)`` whatever the target level."""

    name: str = "uniform"

    def level_sigma(self, g_norm: torch.Tensor, sigma_rel: float) -> torch.Tensor:
        """Return ``sigma_rel`` broadcast to ``g_norm``'s shape."""
        return torch.full_like(g_norm, float(sigma_rel))


@dataclass(frozen=True)
class NonUniformVariation:
    """Mid-range levels are noisier than the two extreme levels.

    ``sigma(g) = sigma_rel * (1 + (mid_gain - 1) * 4 g (1 - g))``: the fully-RESET (g=0) and
    fully-SET (g=1) states have ``sigma_rel``; the exact middle of the range has
    ``mid_gain * sigma_rel``. Intermediate states of filamentary RRAM and of FeFET are set by a
    partial, stochastic switching and are measured to spread more than the saturated states
    (e.g. the level-dependent spreads reported for multi-level RRAM by Wan et al., Nature 2022).
    The parabola is an *assumption* chosen for its two documented end points.
    """

    mid_gain: float = 2.0
    name: str = "nonuniform"

    def level_sigma(self, g_norm: torch.Tensor, sigma_rel: float) -> torch.Tensor:
        """Return the level-dependent std for each entry of ``g_norm``."""
        bump = 4.0 * g_norm * (1.0 - g_norm)
        return sigma_rel * (1.0 + (self.mid_gain - 1.0) * bump)


@dataclass(frozen=True)
class DeviceModel:
    """One NVM technology: levels, conductance range, variation, read noise, pulse costs.

    Pulse/read costs feed :mod:`cim_backend.cost`; each preset documents where its numbers
    come from, or says that they are assumptions. ``drift_name`` names the post-programming
    drift model (:mod:`cim_backend.drift`); ``None`` means the model registered under the
    device's own ``name``.
    """

    name: str
    bits_per_device: int
    g_min_us: float
    g_max_us: float
    sigma_rel: float
    read_noise_rel: float
    variation: VariationModel = field(default_factory=UniformVariation)
    program_pulse_ns: float = 100.0
    program_pulse_pj: float = 10.0
    read_ns: float = 10.0
    read_voltage_v: float = 0.2
    source: str = ""
    drift_name: str | None = None

    def __post_init__(self) -> None:
        if self.bits_per_device < 1:
            raise CIMConfigError(f"bits_per_device must be >= 1, got {self.bits_per_device}")
        if not 0.0 <= self.g_min_us < self.g_max_us:
            raise CIMConfigError(f"need 0 <= g_min_us < g_max_us, got {self.g_min_us}, {self.g_max_us}")
        if self.sigma_rel < 0 or self.read_noise_rel < 0:
            raise CIMConfigError("sigma_rel and read_noise_rel must be >= 0")

    @property
    def levels(self) -> int:
        """Number of distinct conductance levels, ``2**bits_per_device``."""
        return 2 ** self.bits_per_device

    @property
    def g_range_us(self) -> float:
        """Conductance range ``g_max_us - g_min_us`` in micro-siemens."""
        return self.g_max_us - self.g_min_us

    def read_energy_pj(self, g_norm_mean: float = 0.5) -> float:
        """Energy (pJ) of one cell read: ``V_read**2 * G * t_read`` at a typical conductance."""
        g_siemens = (self.g_min_us + g_norm_mean * self.g_range_us) * 1e-6
        return self.read_voltage_v**2 * g_siemens * self.read_ns * 1e-9 * 1e12

    def with_sigma(self, sigma_rel: float) -> "DeviceModel":
        """Return a copy with a different programming variation (for sigma sweeps)."""
        return replace(self, sigma_rel=sigma_rel)

    def drift_model(self):
        """This technology's conductance drift model (:func:`cim_backend.drift.get_drift_model`).

        Raises :class:`~cim_backend.errors.CIMConfigError` for a custom device without a
        registered model; set ``drift_name`` (e.g. ``"none"``) for those.
        """
        from .drift import get_drift_model  # drift.py imports this module

        return get_drift_model(self.drift_name or self.name)


def weight_sigma_formula(sigma_rel: float, w_max: float, weight_bits: int, bits_per_device: int) -> float:
    """Std of a weight's deviation when each of its devices is off by ``N(0, sigma_rel)``.

    ``sigma * max|W| * sqrt(sum_i 4**(i*m)) / sum_i 2**(i*m)`` over the ``N/m`` devices,
    for one device per slice (sign handled digitally). A differential pair whose two
    devices both vary has ``sqrt(2)`` times this value.
    """
    if weight_bits % bits_per_device:
        raise CIMConfigError(f"weight_bits={weight_bits} is not a multiple of bits_per_device={bits_per_device}")
    slices = weight_bits // bits_per_device
    num = math.sqrt(sum(4 ** (i * bits_per_device) for i in range(slices)))
    den = sum(2 ** (i * bits_per_device) for i in range(slices))
    return sigma_rel * w_max * num / den


# Presets. Numbers are representative of the cited literature; where a value is a rounded
# engineering guess it is called an assumption.
RRAM = DeviceModel(
    name="rram",
    bits_per_device=2,
    g_min_us=1.0,
    g_max_us=40.0,
    sigma_rel=0.1,
    read_noise_rel=0.01,
    program_pulse_ns=100.0,
    program_pulse_pj=10.0,
    read_ns=10.0,
    source=(
        "HfOx RRAM: 1-40 uS range as in NeuRRAM (Wan et al., Nature 2022); sigma=0.1 of range "
        "is the standard setting of Yan et al. ICCAD'21 / TSB; read noise 1% and 100 ns / 10 pJ "
        "SET-RESET pulses are assumptions within published RRAM ranges."
    ),
)

FEFET = DeviceModel(
    name="fefet",
    bits_per_device=2,
    g_min_us=0.1,
    g_max_us=10.0,
    sigma_rel=0.1,
    read_noise_rel=0.005,
    program_pulse_ns=100.0,
    program_pulse_pj=1.0,
    read_ns=10.0,
    source=(
        "FeFET: multi-level channel conductance (Jerry et al., IEDM 2017); field-driven "
        "switching gives ~pJ pulses; range, sigma and read noise are assumptions."
    ),
)

PCM = DeviceModel(
    name="pcm",
    bits_per_device=4,
    g_min_us=0.0,
    g_max_us=25.0,
    sigma_rel=0.04,
    read_noise_rel=0.02,
    program_pulse_ns=500.0,
    program_pulse_pj=20.0,
    read_ns=10.0,
    source=(
        "PCM: g_max 25 uS, ~1 uS programming spread (4% of range) and a few % read (1/f) noise, "
        "after Joshi et al., Nat. Commun. 2020; pulse time/energy are assumptions."
    ),
)

DEVICE_PRESETS: dict[str, DeviceModel] = {d.name: d for d in (RRAM, FEFET, PCM)}


def get_device(name: str) -> DeviceModel:
    """Look up a device preset by name (``rram``, ``fefet``, ``pcm``)."""
    try:
        return DEVICE_PRESETS[name]
    except KeyError:
        raise CIMConfigError(f"unknown device {name!r}; choose from {sorted(DEVICE_PRESETS)}") from None
