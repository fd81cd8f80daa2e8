"""Weight-to-device mapping: quantization, bit slicing, sign handling, tiling.

A weight tensor ``W`` with scale ``w_max = max|W|`` (over the tensor, or over each output
channel with ``CIMConfig.per_channel_scales``) is quantized to an integer
magnitude ``q = round(|W| / w_max * (2**N - 1))`` of ``N = weight_bits`` bits, cut into
``S = N / m`` slices of ``m = bits_per_device`` bits (slice 0 holds the least significant bits),
and each slice's digit ``d`` becomes a device at normalised conductance ``d / (2**m - 1)``.
The sign is carried either by a differential pair (``P = 2``: G+ holds positive weights, G-
negative ones, the unused device sits at level 0) or by a digital sign bit (``P = 1``).

Reading back, ``W = sign * w_max * sum_s c_s g_s`` with ``c_s = 2**(s*m) / sum_j 2**(j*m)``,
which reproduces the quantized weight exactly and makes a per-device ``N(0, sigma)`` error
turn into the weight error of :func:`~cim_backend.devices.weight_sigma_formula`.

Tensors of device conductances are laid out ``(chips, P, S, *weight_shape)``; a leading chip
dimension of size 1 broadcasts over chips. Scales are ``(chips, O)``: ``O = 1`` per tensor,
``O = out`` per output channel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .config import CIMConfig, TileShape

_EPS = 1e-12


@dataclass
class DeviceTargets:
    """Target conductances of one weight tensor (possibly one tensor per chip)."""

    g: torch.Tensor  # (chips or 1, P, S, *shape), normalised to [0, 1]
    sign: torch.Tensor | None  # (chips or 1, *shape) of +-1 when P == 1, else None
    w_max: torch.Tensor  # (chips or 1, 1) per tensor or (chips or 1, out) per output channel


def scale_view(w_max: torch.Tensor, weight_dims: int) -> torch.Tensor:
    """``w_max`` ``(C, O)`` shaped to broadcast over weights ``(C, out, ...)`` with
    ``weight_dims`` dimensions after the chip one."""
    return w_max.view(w_max.shape[0], w_max.shape[1], *([1] * (weight_dims - 1)))


def slice_coefficients(config: CIMConfig, device: torch.device | None = None) -> torch.Tensor:
    """``c_s = 2**(s*m) / sum_j 2**(j*m)``: weight of slice ``s`` in the reconstructed magnitude."""
    m = config.device.bits_per_device
    powers = torch.tensor([2.0 ** (s * m) for s in range(config.slices)], dtype=torch.float64)
    return (powers / powers.sum()).to(dtype=torch.float32, device=device)


def _scales(wb: torch.Tensor, per_channel: bool) -> torch.Tensor:
    """``(C, O)`` largest magnitudes: per output channel when asked and ``wb`` ``(C, out, ...)``
    has channels (a vector keeps one scale), else per tensor."""
    magnitude = wb.detach().abs()
    if per_channel and wb.dim() >= 3:
        return magnitude.flatten(2).amax(dim=2).clamp_min(_EPS)
    return magnitude.flatten(1).amax(dim=1, keepdim=True).clamp_min(_EPS)


def to_device_targets(w: torch.Tensor, config: CIMConfig, batched: bool = False) -> DeviceTargets:
    """Quantize and slice ``w`` into target conductances.

    ``batched=True`` means ``w``'s first dimension indexes chips (each with its own scale),
    as for a TSB calibrated separately on every chip.
    """
    w = w.detach().float()
    wb = w if batched else w.unsqueeze(0)
    if config.weight_bits is None:
        # Unquantized (ideal) mapping: one "device" holding |w| exactly, unit scale, so the
        # read-back reproduces w bit for bit.
        return _exact_targets(wb, config)
    w_max = _scales(wb, config.per_channel_scales)
    scale = scale_view(w_max, wb.dim() - 1)
    full = 2**config.weight_bits - 1
    q = torch.round(wb.abs() / scale * full).clamp_(0, full)
    m = config.device.bits_per_device
    base = 2**m
    digits = []
    for _ in range(config.slices):
        digits.append(torch.remainder(q, base))
        q = torch.div(q, base, rounding_mode="floor")
    levels = torch.stack(digits, dim=1) / (base - 1)  # (C, S, *shape)
    if config.differential:
        pos = (wb >= 0).unsqueeze(1).float()
        g = torch.stack([levels * pos, levels * (1.0 - pos)], dim=1)
        return DeviceTargets(g=g, sign=None, w_max=w_max)
    sign = torch.where(wb >= 0, 1.0, -1.0)
    return DeviceTargets(g=levels.unsqueeze(1), sign=sign, w_max=w_max)


def _exact_targets(wb: torch.Tensor, config: CIMConfig) -> DeviceTargets:
    w_max = torch.ones(wb.shape[0], 1)
    if config.differential:
        g = torch.stack([wb.clamp_min(0), (-wb).clamp_min(0)], dim=1).unsqueeze(2)
        return DeviceTargets(g=g, sign=None, w_max=w_max)
    sign = torch.where(wb >= 0, 1.0, -1.0)
    return DeviceTargets(g=wb.abs().unsqueeze(1).unsqueeze(1), sign=sign, w_max=w_max)


def from_conductances(g: torch.Tensor, targets: DeviceTargets, config: CIMConfig) -> torch.Tensor:
    """Effective weights ``(chips, *shape)`` seen by the periphery for conductances ``g``."""
    coeff = slice_coefficients(config, g.device)
    view = coeff.view(1, 1, -1, *([1] * (g.dim() - 3)))
    mag = (g * view).sum(dim=2)  # (C, P, *shape)
    val = mag[:, 0] - mag[:, 1] if config.differential else mag[:, 0] * targets.sign
    return val * scale_view(targets.w_max, val.dim() - 1)


def quantize_weight(w: torch.Tensor, config: CIMConfig) -> torch.Tensor:
    """Digital fake-quantized copy of ``w`` (what a noiseless chip stores); identity if unquantized."""
    if config.weight_bits is None:
        return w
    targets = to_device_targets(w, config)
    return from_conductances(targets.g, targets, config)[0].to(w.dtype)


def quantize_weight_ste(w: torch.Tensor, config: CIMConfig) -> torch.Tensor:
    """Fake quantization with a straight-through gradient (for noise-injection training)."""
    if config.weight_bits is None:
        return w
    return w + (quantize_weight(w, config) - w).detach()


def weight_noise_std(targets: DeviceTargets, config: CIMConfig, device_sigma: torch.Tensor) -> torch.Tensor:
    """Per-weight std ``w_max * sqrt(sum_p sum_s c_s**2 sigma_ps**2)`` from per-device stds.

    ``device_sigma`` has the layout of ``targets.g`` (or broadcasts to it).
    """
    coeff = slice_coefficients(config, targets.g.device)
    view = coeff.view(1, 1, -1, *([1] * (targets.g.dim() - 3)))
    var = (device_sigma.expand_as(targets.g) ** 2 * view**2).sum(dim=(1, 2))
    return var.sqrt() * scale_view(targets.w_max, var.dim() - 1)


def as_matrix(w: torch.Tensor) -> torch.Tensor:
    """View a linear ``(out, in)`` or conv ``(out, in, kh, kw)`` weight as ``(out, rows)``."""
    return w.reshape(w.shape[0], -1)


def tile_grid(rows: int, cols: int, tile: TileShape) -> tuple[int, int]:
    """Number of arrays along the word-line (input) and bit-line (output) directions."""
    return math.ceil(rows / tile.rows), math.ceil(cols / tile.cols)
