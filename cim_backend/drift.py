"""Conductance drift and relaxation after programming, one published model per technology.

A programmed chip does not keep its conductances: they move with the time ``t`` elapsed since
programming. :func:`drifted` returns a chip's state at time ``t``; :func:`drifted_model`
runs a whole model (CIM layers and the Tiny Shared Block alike) at that time and restores the
freshly-programmed state on exit. Programmed conductances are taken as the state at the
model's reference time ``t0`` (the end of programming / the first verify read), so for
``t <= t0`` nothing changes.

Models (all in the normalised conductance units of :mod:`cim_backend.devices`):

PCM: power-law drift (:class:`PowerLawDrift`)
    ``G(t) = G(t0) * (t / t0) ** -nu`` with a per-device drift exponent
    ``nu ~ N(nu_mean(G), nu_std(G))`` (floored at 0: drift never raises a PCM conductance).
    The power law comes from structural relaxation of the amorphous phase (Ielmini et al.,
    IEEE TED 2007; Le Gallo et al., Adv. Electron. Mater. 2018) and is the drift model of the
    PCM inference chips of Joshi et al., Nat. Commun. 11, 2473 (2020). The level dependence
    of ``nu`` and ``t0 = 20 s`` follow the statistical fit to measured PCM devices of
    Nandakumar et al., ICECS 2019, as published in IBM's aihwkit PCM inference model:
    ``nu_mean = clip(0.0244 - 0.0155 ln(G/G_max), 0.049, 0.1)`` and
    ``nu_std = clip(-0.0059 - 0.0125 ln(G/G_max), 0.008, 0.045)``; so states near ``G_max``
    drift with ``nu ~ 0.049 +- 0.008`` and low, more amorphous states faster and more
    spread. The accumulated 1/f read noise of that model is not included (read noise stays
    the device's ``read_noise_rel``).

RRAM: conductance relaxation (:class:`RelaxationDrift`)
    ``g(t) = g(t0) + sigma(t) * z``, ``z ~ N(0, 1)`` per device, with a spread that grows
    linearly in ``log10(t / t0)``, as measured for filamentary HfOx analog RRAM (Zhao et al.,
    "Investigation of statistical retention of filamentary analog RRAM for neuromorphic
    computing", IEDM 2017). The rate, 0.014 of the range per decade from ``t0 = 1 s``, is our
    own reduction of the spreads measured on HfOx RRAM by Wan et al., Nature 608, 504 (2022)
    (NeuRRAM; the fits of their 1 s and 1 day data distributed with aihwkit's
    ``ReRamWan2022NoiseModel``): the relaxation variance added between 1 s and 1 day,
    ``sigma_1day**2 - sigma_1s**2``, averaged over levels, is ``(0.071 of 40 uS)**2``, i.e.
    0.014 per decade over the 4.9 decades. Assumptions: relaxation is mean-free and the same
    at every level (the data show mid-range levels relaxing ~5x more than the extremes).

FeFET: retention loss, relaxation-like (assumption)
    No per-device FeFET retention statistics comparable to the two above are used here.
    We *assume* a slow, mean-free, log-time spread like RRAM's (depolarisation and charge
    trapping blur the intermediate polarisation states) at a third of its rate,
    0.005 of the range per decade from ``t0 = 1 s``. Treat FeFET drift results as a
    sensitivity study, not a prediction.

Stuck devices (see :mod:`cim_backend.programming`) do not drift. Drifted conductances are
clipped to ``[0, 1]`` when the configuration clips programmed ones.

Randomness: the per-device draws of chip ``c`` come from a generator seeded by
``(seed, c, layer_key)`` on a stream of their own, so a chip drifts identically alone or in a
batch, and the same ``seed`` at two times gives two points of the same trajectories.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Protocol

import torch
from torch import nn

from .devices import DeviceModel
from .errors import CIMConfigError
from .programming import DRIFT_STREAM, ProgrammedTensor, stream_generator

# PCM conductances at 0 would make log(G / G_max) infinite; any G this small sits on the
# clipped (maximum) branch of the nu fit anyway.
_G_REL_FLOOR = 1e-7


class DriftModel(Protocol):
    """A post-programming conductance evolution law."""

    name: str
    t0_s: float

    def drift(self, g: torch.Tensor, device: DeviceModel, t_seconds: float, gen: torch.Generator) -> torch.Tensor:
        """Normalised conductances at ``t_seconds`` after programming, from ``g`` at ``t0``.

        Draws a fixed number of values from ``gen`` (one per device) whatever ``t_seconds``
        is, so one generator state gives consistent trajectories across times.
        """
        ...


def _to_us(g: torch.Tensor, device: DeviceModel) -> torch.Tensor:
    return device.g_min_us + g * device.g_range_us


@dataclass(frozen=True)
class PowerLawDrift:
    """PCM drift ``G(t) = G(t0) (t/t0)^-nu`` with a level-dependent, per-device ``nu``.

    ``nu_mean`` / ``nu_std`` are ``a + b ln(G / G_max)`` clipped to ``[lo, hi]``; set the
    slopes to 0 for a level-independent exponent. Defaults: see the module docstring.
    """

    t0_s: float = 20.0
    nu_mean_a: float = 0.0244
    nu_mean_b: float = -0.0155
    nu_mean_lo: float = 0.049
    nu_mean_hi: float = 0.1
    nu_std_a: float = -0.0059
    nu_std_b: float = -0.0125
    nu_std_lo: float = 0.008
    nu_std_hi: float = 0.045
    name: str = "pcm-power-law"

    def nu_stats(self, g_rel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and std of the drift exponent at conductance ``g_rel = G / G_max``."""
        log_g = torch.log(g_rel.clamp_min(_G_REL_FLOOR))
        mean = (self.nu_mean_a + self.nu_mean_b * log_g).clamp(self.nu_mean_lo, self.nu_mean_hi)
        std = (self.nu_std_a + self.nu_std_b * log_g).clamp(self.nu_std_lo, self.nu_std_hi)
        return mean, std

    def sample_nu(self, g: torch.Tensor, device: DeviceModel, gen: torch.Generator) -> torch.Tensor:
        """One drift exponent per device (floored at 0), for normalised conductances ``g``."""
        mean, std = self.nu_stats(_to_us(g, device) / device.g_max_us)
        return (mean + std * torch.randn(g.shape, generator=gen)).clamp_min(0.0)

    def drift(self, g: torch.Tensor, device: DeviceModel, t_seconds: float, gen: torch.Generator) -> torch.Tensor:
        """Apply the power law to the absolute conductance (so ``G_min > 0`` ranges drift too)."""
        nu = self.sample_nu(g, device, gen)
        if t_seconds <= self.t0_s:
            return g
        factor = torch.pow(torch.tensor(t_seconds / self.t0_s, dtype=g.dtype), -nu)
        # (G_min + g range) * f - G_min, in range units; written so that G_min = 0 (PCM) or
        # f = 1 (nu = 0) leave g exact, with no round-off from a round trip through uS.
        return g * factor + (device.g_min_us / device.g_range_us) * (factor - 1.0)


@dataclass(frozen=True)
class RelaxationDrift:
    """Mean-free relaxation: ``g(t) = g(t0) + sigma_per_decade * log10(t/t0) * N(0, 1)``."""

    t0_s: float = 1.0
    sigma_per_decade: float = 0.014
    name: str = "relaxation"

    def sigma(self, t_seconds: float) -> float:
        """Std (normalised units) of the relaxation accumulated by ``t_seconds``."""
        return self.sigma_per_decade * math.log10(t_seconds / self.t0_s) if t_seconds > self.t0_s else 0.0

    def drift(self, g: torch.Tensor, device: DeviceModel, t_seconds: float, gen: torch.Generator) -> torch.Tensor:
        """Add the relaxation spread accumulated by ``t_seconds`` (the same ``z`` at every time)."""
        z = torch.randn(g.shape, generator=gen)
        return g + self.sigma(t_seconds) * z


@dataclass(frozen=True)
class NoDrift:
    """Conductances stay where they were programmed (for devices with negligible drift)."""

    t0_s: float = 0.0
    name: str = "none"

    def drift(self, g: torch.Tensor, device: DeviceModel, t_seconds: float, gen: torch.Generator) -> torch.Tensor:
        """Return ``g`` unchanged."""
        return g


PCM_DRIFT = PowerLawDrift()
RRAM_RELAXATION = RelaxationDrift(t0_s=1.0, sigma_per_decade=0.014, name="rram-relaxation")
FEFET_RETENTION = RelaxationDrift(t0_s=1.0, sigma_per_decade=0.005, name="fefet-retention")

DRIFT_MODELS: dict[str, DriftModel] = {
    "pcm": PCM_DRIFT, "rram": RRAM_RELAXATION, "fefet": FEFET_RETENTION, "none": NoDrift(),
}


def get_drift_model(name: str) -> DriftModel:
    """Drift model of a device technology (``pcm``, ``rram``, ``fefet``) or ``none``."""
    try:
        return DRIFT_MODELS[name]
    except KeyError:
        raise CIMConfigError(
            f"no drift model for {name!r}; choose from {sorted(DRIFT_MODELS)} "
            "(set DeviceModel.drift_name, or pass a drift model explicitly)"
        ) from None


def drifted(pt: ProgrammedTensor, t_seconds: float, seed: int, model: DriftModel | None = None) -> ProgrammedTensor:
    """``pt`` as it reads ``t_seconds`` after programming: new conductances, same targets.

    ``model`` defaults to the device's own (:meth:`DeviceModel.drift_model`). For
    ``t_seconds <= t0`` (and for the unquantized ideal mapping, which has no conductances)
    ``pt`` itself is returned. Reproducible per ``(seed, chip)``: chip ``c`` draws from
    ``(seed, c, pt.layer_key)`` on the drift stream, whatever else is in the batch.
    """
    config = pt.config
    if config.weight_bits is None:
        return pt
    model = model or config.device.drift_model()
    if t_seconds <= model.t0_s:
        return pt
    out = []
    for k, chip in enumerate(pt.chip_id_list()):
        gen = stream_generator(seed, chip, pt.layer_key, DRIFT_STREAM)
        g = model.drift(pt.g[k], config.device, float(t_seconds), gen)
        if pt.stuck is not None:
            g = torch.where(pt.stuck[k], pt.g[k], g)  # a stuck device is pinned, not programmed
        if config.clips:
            g = g.clamp(0.0, 1.0)
        out.append(g)
    return replace(pt, g=torch.stack(out), _effective=None)


@contextmanager
def drifted_model(
    model: nn.Module, t_seconds: float, seed: int, drift_model: DriftModel | None = None
) -> Iterator[nn.Module]:
    """Run ``model`` with every programmed tensor drifted to ``t_seconds`` after programming.

    Every module holding a :class:`ProgrammedTensor` in ``.programmed`` (CIM layers, the Tiny
    Shared Block) gets its drifted version; modules are visited once each, so a block shared
    by many sites drifts once. A read-back installed on a layer (used while calibrating) stands
    for the chip's state, so it is shifted by the same drift: the same read noise on the
    drifted devices. Everything is restored on exit, also after an exception.
    """
    restores: list[Callable[[], None]] = []
    try:
        for module in model.modules():
            pt = getattr(module, "programmed", None)
            if not isinstance(pt, ProgrammedTensor):
                continue
            new = drifted(pt, t_seconds, seed, drift_model)
            restores.append(lambda module=module, pt=pt: setattr(module, "programmed", pt))
            module.programmed = new
            if new is not pt:
                restores.append(_shift_readback(module, pt, new))
        yield model
    finally:
        for restore in reversed(restores):
            restore()


def _shift_readback(module: nn.Module, pt: ProgrammedTensor, new: ProgrammedTensor) -> Callable[[], None]:
    """Move ``module``'s installed read-back by the drift ``new - pt``; return its undo."""
    weights = getattr(module, "readback", None)
    if not isinstance(weights, torch.Tensor):
        return lambda: None
    g = getattr(module, "readback_g", None)
    if isinstance(g, torch.Tensor) and hasattr(module, "set_readback"):
        # Device-level read-back (needed by the crossbar/ADC path): shift the conductances
        # and let the layer rebuild its weights; the undo reinstalls the very same tensors.
        module.set_readback(g + (new.g - pt.g))
        return lambda: module.set_readback(g, weights=weights)
    delta = new.effective() - pt.effective()  # effective weights are linear in g
    if delta.shape != weights.shape:
        return lambda: None
    module.readback = weights + delta
    return lambda: setattr(module, "readback", weights)
