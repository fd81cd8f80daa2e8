"""Crossbar arithmetic: DAC input quantization, tiled analog MVM, ADC, digital shift-and-add.

The detailed path (:func:`crossbar_mvm`) follows the hardware: the input vector is cut into
``tile.rows``-long pieces (one per array of word lines); every array, bit slice and polarity
produces one analog partial sum per column; the ADC quantizes each of them; the digital
periphery scales slices by ``c_s``, subtracts polarities and adds tiles. When the ADC is ideal
these steps are linear and the result equals one matmul with the effective weights, which is
the fast path the layers use (see :mod:`cim_backend.layers`).
"""

from __future__ import annotations

import torch

from .config import CIMConfig
from .mapping import DeviceTargets, slice_coefficients


class _QuantizeSTE(torch.autograd.Function):
    """``round(x / step).clamp(lo, hi) * step`` with a straight-through gradient.

    One fused autograd node (three in-place passes) instead of the six passes of the usual
    ``x + (q - x).detach()`` idiom: activations are the largest tensors in a chip batch.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, step: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
        """Quantize to integer codes in ``[lo, hi]`` times ``step``."""
        q = torch.div(x, step).round_().clamp_(lo, hi)
        return q.mul_(step)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        """Straight-through: the gradient passes unchanged to ``x``."""
        return grad, None, None, None


def dac_quantize(x: torch.Tensor, bits: int | None, x_range: torch.Tensor | float, signed: bool) -> torch.Tensor:
    """Quantize inputs to the DAC's levels over ``[0, x_range]`` (or ``[-x_range, x_range]``).

    ``bits=None`` is an ideal DAC. Gradients pass straight through (for training).
    """
    if bits is None:
        return x
    x_range = torch.as_tensor(x_range, dtype=x.dtype, device=x.device).clamp_min(1e-12)
    if signed:
        levels = 2 ** (bits - 1) - 1
        lo = -levels
    else:
        levels = 2**bits - 1
        lo = 0
    return _QuantizeSTE.apply(x, x_range / levels, float(lo), float(levels))


def adc_quantize(psum: torch.Tensor, bits: int | None, full_scale: float, signed: bool) -> torch.Tensor:
    """Quantize analog partial sums to the ADC's codes over ``[0, FS]`` or ``[-FS, FS]``."""
    if bits is None:
        return psum
    return dac_quantize(psum, bits, full_scale, signed)


def _split_polarities(g: torch.Tensor, targets: DeviceTargets, config: CIMConfig) -> torch.Tensor:
    """``(C, 2, S, out, rows)`` arrays; a digital-sign layout puts + and - weights on separate columns."""
    if config.differential:
        return g
    sign = targets.sign.reshape(targets.sign.shape[0], 1, 1, *g.shape[3:])
    return torch.cat([g * (sign > 0), g * (sign < 0)], dim=1)


def crossbar_mvm(
    x: torch.Tensor,
    g: torch.Tensor,
    targets: DeviceTargets,
    config: CIMConfig,
    x_range: float,
    signed_input: bool,
) -> torch.Tensor:
    """Tiled MVM of ``x`` ``(C, N, rows)`` with conductances ``g`` ``(C, P, S, out, rows)``.

    Read noise (fresh) is drawn per device; each tile/slice/polarity/column partial sum goes
    through the ADC. Returns ``(C, N, out)``.
    """
    if config.read_sigma_rel > 0:
        g = g + torch.randn_like(g) * config.read_sigma_rel
    g = _split_polarities(g, targets, config)
    chips, n, rows = x.shape
    tile_rows = config.tile.rows
    tiles = -(-rows // tile_rows)
    pad = tiles * tile_rows - rows
    if pad:
        x = torch.nn.functional.pad(x, (0, pad))
        g = torch.nn.functional.pad(g, (0, pad))
    xt = x.reshape(chips, n, tiles, tile_rows)
    gt = g.reshape(*g.shape[:4], tiles, tile_rows)
    psum = torch.einsum("cntr,cpsotr->cnpsot", xt, gt)
    full_scale = config.adc_range * tile_rows * float(x_range)
    psum = adc_quantize(psum, config.adc_bits, full_scale, signed_input)
    coeff = slice_coefficients(config, x.device).view(1, 1, 1, -1, 1, 1)
    per_pol = (psum * coeff).sum(dim=(3, 5))  # (C, N, 2, out)
    out = per_pol[:, :, 0] - per_pol[:, :, 1]
    return out * targets.w_max.view(-1, 1, 1)
