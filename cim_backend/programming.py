"""Programming weights onto chips: one-shot programming, write-verify, read-back.

A *chip* is one fixed realisation of the device variation. Chip ``i`` of a programming run
with seed ``s`` draws its noise from its own generator seeded by ``(s, i, layer_key)``, so the
same chip comes out whether it is programmed alone or in a batch of many.

Conductances are clipped to the device range ``[0, 1]`` after the one-shot pulse and after
every write-verify pulse when ``CIMConfig.clip_conductance`` is on (the default: a real
device cannot leave its range). The Gaussian model of this line of research and its
closed-form weight std (:func:`~cim_backend.devices.weight_sigma_formula`) assume unbounded
errors; ``clip_conductance=False`` reproduces that model exactly.

Stuck-at faults (``CIMConfig.stuck_on_rate`` / ``stuck_off_rate``) pin a device at ``g = 1``
or ``g = 0`` whatever it is programmed to. The fault map of a chip is drawn from its own
stream (:func:`fault_generator`), separate from the programming stream, so switching faults
on or off leaves every other random draw unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from .config import CIMConfig, WriteVerifyConfig
from .errors import CIMConfigError
from .mapping import DeviceTargets, from_conductances, scale_view, slice_coefficients, to_device_targets


def chip_generator(seed: int, chip: int, layer_key: int) -> torch.Generator:
    """Independent, reproducible generator for one (seed, chip, layer) triple."""
    state = np.random.SeedSequence([seed, chip, layer_key]).generate_state(2, dtype=np.uint64)
    return torch.Generator().manual_seed(int(state[0] % (2**63)))


# Stream ids of the extra per-chip generators. A 4-word SeedSequence entropy never equals the
# 3-word one of chip_generator, so these streams are independent of the programming stream
# and of every layer key (unlike ``layer_key + offset``, which could hit another layer's key).
FAULT_STREAM = 1
DRIFT_STREAM = 2
# The compact write-verify loop draws from its own stream, so that verifying weights of a chip
# already programmed without verification (:func:`verify_programmed`) lands exactly where
# verifying them while programming would have.
VERIFY_STREAM = 3


def stream_generator(seed: int, chip: int, layer_key: int, stream: int) -> torch.Generator:
    """Independent generator for one (seed, chip, layer) triple and an auxiliary ``stream``."""
    state = np.random.SeedSequence([seed, chip, layer_key, stream]).generate_state(2, dtype=np.uint64)
    return torch.Generator().manual_seed(int(state[0] % (2**63)))


def fault_generator(seed: int, chip: int, layer_key: int) -> torch.Generator:
    """Generator of the stuck-at fault map of one (seed, chip, layer) triple."""
    return stream_generator(seed, chip, layer_key, FAULT_STREAM)


def draw_stuck_faults(
    shape: Sequence[int], config: CIMConfig, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Boolean ``(stuck_on, stuck_off)`` device masks of ``shape``, or ``None`` without faults.

    One uniform draw per device: below ``stuck_on_rate`` the device is stuck on, in the next
    ``stuck_off_rate`` it is stuck off, so the two rates are exact and the masks disjoint.
    """
    if not config.has_stuck_faults:
        return None
    u = torch.rand(tuple(shape), generator=gen)
    on = u < config.stuck_on_rate
    off = (u >= config.stuck_on_rate) & (u < config.stuck_on_rate + config.stuck_off_rate)
    return on, off


@dataclass
class ProgrammedTensor:
    """The conductances actually programmed for one weight tensor on a batch of chips."""

    config: CIMConfig
    targets: DeviceTargets
    g: torch.Tensor  # (chips, P, S, *shape)
    verified: torch.Tensor  # bool (chips or 1, *shape): weights whose devices were write-verified
    pulses: torch.Tensor  # (chips,) programming pulses, all devices
    verify_reads: torch.Tensor  # (chips,) verify reads, all devices
    _effective: torch.Tensor | None = field(default=None, repr=False)
    # Which chips these are and which layer stream they came from, so that later per-chip
    # random processes (drift) reproduce per (seed, chip) whatever the batch; None: 0..C-1.
    chip_ids: tuple[int, ...] | None = None
    layer_key: int = 0
    stuck: torch.Tensor | None = field(default=None, repr=False)  # bool like g: stuck devices

    def chip_id_list(self) -> list[int]:
        """The chip ids held (``0..chips-1`` when the tensor was built without them)."""
        return list(self.chip_ids) if self.chip_ids is not None else list(range(self.chips))

    @property
    def chips(self) -> int:
        """Number of chips held."""
        return self.g.shape[0]

    def effective(self) -> torch.Tensor:
        """Effective weights ``(chips, *shape)`` without read noise (cached: ``g`` never changes)."""
        if self._effective is None:
            self._effective = from_conductances(self.g, self.targets, self.config)
        return self._effective

    def read_noise_std(self) -> torch.Tensor:
        """Per-weight std ``(chips or 1, 1...)`` added by one read of every device."""
        coeff = slice_coefficients(self.config, self.g.device)
        per_unit = self.config.read_sigma_rel * float((self.config.polarities * (coeff**2).sum()).sqrt())
        return scale_view(self.targets.w_max, self.g.dim() - 3) * per_unit

    def read(self) -> torch.Tensor:
        """Effective weights with a fresh read-noise sample (what one inference sees).

        Summing independent Gaussian device read errors with the slice coefficients gives a
        Gaussian weight error, so sampling it per weight is exact in distribution and
        ``P*S`` times cheaper than sampling every device.
        """
        w = self.effective()
        if self.config.read_sigma_rel > 0:
            w = w + torch.randn_like(w) * self.read_noise_std()
        return w

    def select(self, index: Sequence[int] | slice) -> "ProgrammedTensor":
        """The sub-batch of chips ``index`` (for loops over single chips, ONNX export)."""
        idx = torch.arange(self.chips)[index] if isinstance(index, slice) else torch.as_tensor(list(index))

        def pick(t: torch.Tensor) -> torch.Tensor:
            return t if t.shape[0] == 1 else t[idx]

        targets = DeviceTargets(
            g=pick(self.targets.g),
            sign=None if self.targets.sign is None else pick(self.targets.sign),
            w_max=pick(self.targets.w_max),
        )
        ids = self.chip_id_list()
        return ProgrammedTensor(
            self.config, targets, self.g[idx], pick(self.verified), self.pulses[idx], self.verify_reads[idx],
            chip_ids=tuple(ids[int(i)] for i in idx), layer_key=self.layer_key,
            stuck=None if self.stuck is None else self.stuck[idx],
        )


def _device_mask(mask: torch.Tensor | None, targets: DeviceTargets, chips: int, batched: bool) -> torch.Tensor:
    shape = targets.g.shape[3:]
    if mask is None:
        return torch.zeros((1, *shape), dtype=torch.bool)
    mask = mask.to(torch.bool)
    mask = mask if batched else mask.unsqueeze(0)
    if tuple(mask.shape[1:]) != tuple(shape):
        raise CIMConfigError(f"verify mask shape {tuple(mask.shape[1:])} != weight shape {tuple(shape)}")
    return mask


def write_verify(
    g: torch.Tensor,
    target: torch.Tensor,
    active: torch.Tensor,
    step_sigma: torch.Tensor,
    tolerance: float,
    read_sigma: float,
    wv: WriteVerifyConfig,
    gen: torch.Generator,
    clip: bool = False,
    stuck: torch.Tensor | None = None,
    compact: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Iterate read -> compare -> corrective pulse on the ``active`` devices.

    ``compact``: run the loop on the active devices only (gathered, then scattered back), so
    verifying a few thousand of a language model's 425M devices costs what they cost, not a
    pass over all of them per iteration. Same loop, same statistics, but the random draws
    come in another order, so results differ from the full-tensor loop's draw for draw (the
    reproduction keeps the full loop, whose committed results depend on its order).

    A device is accepted once a (noisy) read lands within ``tolerance`` of its target; each
    corrective pulse moves it by minus the read error and lands with spread ``step_sigma``.
    ``clip`` keeps every landing inside ``[0, 1]``. Devices marked in ``stuck`` are read and
    pulsed like any other (the loop cannot tell a stuck device from an unlucky one) but never
    move, so unless a read happens to fall within tolerance they burn all ``max_pulses``.
    Returns the new conductances, the corrective pulses and the verify reads per device.
    """
    g = g.clone()
    pulses = torch.zeros_like(g)
    reads = torch.zeros_like(g)
    active = active.expand_as(g).clone()
    if tolerance <= 0 or not bool(active.any()):
        return g, pulses, reads
    if compact:
        where = active.reshape(-1).nonzero().squeeze(1)
        pick = lambda t: t.expand_as(g).reshape(-1)[where]  # noqa: E731
        sub = write_verify(pick(g), pick(target), torch.ones_like(where, dtype=torch.bool),
                           pick(step_sigma) if torch.is_tensor(step_sigma) else step_sigma, tolerance, read_sigma,
                           wv, gen, clip, None if stuck is None else pick(stuck))
        for full, part in zip((g, pulses, reads), sub):
            full.view(-1)[where] = part
        return g, pulses, reads
    for _ in range(wv.max_pulses):
        read = g + read_sigma * torch.randn(g.shape, generator=gen) if read_sigma > 0 else g
        reads += active.float()
        need = active & ((read - target).abs() > tolerance)
        if not bool(need.any()):
            break
        landed = g - (read - target) + step_sigma * torch.randn(g.shape, generator=gen)
        if clip:
            landed = landed.clamp(0.0, 1.0)
        moved = need if stuck is None else need & ~stuck
        g = torch.where(moved, landed, g)
        pulses += need.float()
        active = need
    return g, pulses, reads


def _program_one_chip(
    targets: DeviceTargets,
    k: int,
    mask: torch.Tensor,
    config: CIMConfig,
    gen: torch.Generator,
    faults: tuple[torch.Tensor, torch.Tensor] | None = None,
    verify_gen: torch.Generator | None = None,
):
    """Program chip ``k`` (index into batched targets, or 0): one shot, then write-verify
    (with ``verify_gen``: the compact loop of :func:`write_verify` on that stream; without:
    the full loop, continuing ``gen``).

    ``faults`` is the chip's ``(stuck_on, stuck_off)`` device masks (:func:`draw_stuck_faults`).
    """
    tg = targets.g[k if targets.g.shape[0] > 1 else 0]
    sigma = config.device.variation.level_sigma(tg, config.sigma_rel)
    # In place (one new tensor per chip, not three): a language model's chip is 425M devices.
    g = torch.randn(tg.shape, generator=gen).mul_(sigma).add_(tg) if config.sigma_rel > 0 else tg.clone()
    if config.clips:
        g.clamp_(0.0, 1.0)
    stuck = None
    if faults is not None:
        on, off = faults
        g = torch.where(on, 1.0, torch.where(off, 0.0, g))
        stuck = on | off
    g, pulses, reads = _verify_chip(g, tg, mask[k if mask.shape[0] > 1 else 0], sigma, config,
                                    verify_gen or gen, stuck, compact=verify_gen is not None)
    return g, float(tg.numel() + pulses), reads


def _verify_chip(g, tg, m, sigma, config: CIMConfig, gen, stuck, compact: bool) -> tuple[torch.Tensor, float, float]:
    """Write-verify the devices of the weights in ``m`` on one chip: new conductances,
    corrective pulses and verify reads."""
    if not bool(m.any()):  # nothing to verify: skip the loop's full-size bookkeeping tensors
        return g, 0.0, 0.0
    dev_mask = m.view(1, 1, *m.shape).expand_as(tg)
    wv = config.write_verify
    g, pulses, reads = write_verify(
        g, tg, dev_mask, sigma * wv.step_sigma_factor, wv.tolerance(config.sigma_rel), config.read_sigma_rel, wv, gen,
        clip=config.clips, stuck=stuck, compact=compact,
    )
    return g, float(pulses.sum()), float(reads.sum())


def program_tensor(
    w: torch.Tensor,
    config: CIMConfig,
    chip_ids: Sequence[int],
    seed: int,
    layer_key: int = 0,
    verify_mask: torch.Tensor | None = None,
    batched: bool = False,
    compact_verify: bool = False,
) -> ProgrammedTensor:
    """Program ``w`` onto each chip of ``chip_ids``; write-verify the weights in ``verify_mask``
    (``compact_verify``: the loop on those devices only, see :func:`write_verify`).

    ``batched=True``: ``w`` (and ``verify_mask``) carry one tensor per chip on their first
    dimension. Every device costs one programming pulse; verified devices add their
    corrective pulses and verify reads. With stuck-at faults configured, each chip's fault
    map comes from :func:`fault_generator` (the programming stream is left untouched).
    """
    targets = to_device_targets(w, config, batched=batched)
    chip_ids = list(chip_ids)
    if batched and targets.g.shape[0] != len(chip_ids):
        raise CIMConfigError(f"batched weights hold {targets.g.shape[0]} chips, chip_ids {len(chip_ids)}")
    mask = _device_mask(verify_mask, targets, len(chip_ids), batched)
    gs, pulses, reads, stuck = [], [], [], []
    for k, chip in enumerate(chip_ids):
        faults = draw_stuck_faults(targets.g.shape[1:], config, fault_generator(seed, chip, layer_key))
        verify_gen = stream_generator(seed, chip, layer_key, VERIFY_STREAM) if compact_verify else None
        g, p, r = _program_one_chip(targets, k, mask, config, chip_generator(seed, chip, layer_key), faults,
                                    verify_gen)
        gs.append(g)
        pulses.append(p)
        reads.append(r)
        if faults is not None:
            stuck.append(faults[0] | faults[1])
    return ProgrammedTensor(
        config=config,
        targets=targets,
        g=gs[0].unsqueeze(0) if len(gs) == 1 else torch.stack(gs),
        verified=mask,
        pulses=torch.tensor(pulses, dtype=torch.float64),
        verify_reads=torch.tensor(reads, dtype=torch.float64),
        chip_ids=tuple(int(c) for c in chip_ids),
        layer_key=layer_key,
        stuck=torch.stack(stuck) if stuck else None,
    )


def verify_programmed(pt: ProgrammedTensor, verify_mask: torch.Tensor, seed: int) -> ProgrammedTensor:
    """The chips of ``pt`` (programmed without write-verify, with ``seed``) after write-verifying
    the weights in ``verify_mask`` (one mask for every chip): exactly what
    ``program_tensor(..., verify_mask=verify_mask, compact_verify=True)`` would have programmed,
    without programming every device again. ``pt`` itself is left as it was."""
    if bool(pt.verified.any()):
        raise CIMConfigError("verify_programmed takes chips programmed without write-verify")
    mask = _device_mask(verify_mask, pt.targets, pt.chips, batched=False)
    gs, pulses, reads = [], pt.pulses.clone(), pt.verify_reads.clone()
    for k, chip in enumerate(pt.chip_id_list()):
        tg = pt.targets.g[k if pt.targets.g.shape[0] > 1 else 0]
        sigma = pt.config.device.variation.level_sigma(tg, pt.config.sigma_rel)
        stuck = None if pt.stuck is None else pt.stuck[k]
        g, p, r = _verify_chip(pt.g[k], tg, mask[0], sigma, pt.config,
                               stream_generator(seed, chip, pt.layer_key, VERIFY_STREAM), stuck, compact=True)
        gs.append(g)
        pulses[k] += p
        reads[k] += r
    return replace(pt, g=torch.stack(gs), verified=mask, pulses=pulses, verify_reads=reads, _effective=None)


def read_back(pt: ProgrammedTensor, seed: int) -> torch.Tensor:
    """Effective weights measured by reading every device once, with read noise.

    This is what the deployment flow knows about a chip: the chip's real state plus one
    read's noise (seeded so a calibration is reproducible). The weights built from
    :func:`read_back_conductances` with the same seed.
    """
    return from_conductances(read_back_conductances(pt, seed), pt.targets, pt.config)


def read_back_conductances(pt: ProgrammedTensor, seed: int) -> torch.Tensor:
    """Conductances ``(chips, P, S, *shape)`` measured by reading every device once, with read noise.

    The device-level form of :func:`read_back`: the tiled/ADC path needs every device's
    value (its partial sums are per device column), not only the weights they add up to.
    Seeded, so the same ``seed`` gives the same read as :func:`read_back`.
    """
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(pt.g.shape, generator=gen) * pt.config.read_sigma_rel
    return pt.g + noise
