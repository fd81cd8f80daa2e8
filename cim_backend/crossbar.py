"""Crossbar arithmetic: DAC input quantization, tiled analog MVM, ADC, digital shift-and-add.

The detailed path (:func:`crossbar_mvm`) follows the hardware: the input vector is cut into
``tile.rows``-long pieces (one per array of word lines); every array, bit slice and polarity
produces one analog partial sum per column; the ADC quantizes each of them; the digital
periphery scales slices by ``c_s``, subtracts polarities and adds tiles. When the ADC is ideal
these steps are linear and the result equals one matmul with the effective weights, which is
the fast path the layers use (see :mod:`cim_backend.layers`).

Speed of the detailed path: a chip's partial sums are ``P*S*tiles`` times as many as its
outputs, so their matmul costs ``P*S`` times the fast path's and cannot be avoided. Everything
else is kept to a few in-place passes over cache-sized blocks of partial sums (see
:class:`_TiledMVM`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .config import CIMConfig
from .mapping import DeviceTargets, slice_coefficients

# Partial sums (floats) computed at once by one block of chips of :class:`_TiledMVM`: about
# 1 MiB, so the ADC's round/clamp and the shift-and-add read the block while it is still in
# cache (measured on LeNet/digits' layers at 50 chips, 1 thread: 1.6-4x faster per layer than
# one block of all chips; 4x this size changed little).
PSUM_BLOCK_FLOATS = 1 << 18


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


def _code_range(bits: int, signed: bool) -> tuple[int, int]:
    """Integer codes ``(lo, hi)`` of a converter: ``[0, 2**b - 1]`` or ``[-(2**(b-1) - 1), 2**(b-1) - 1]``."""
    if signed:
        levels = 2 ** (bits - 1) - 1
        return -levels, levels
    return 0, 2**bits - 1


def dac_quantize(x: torch.Tensor, bits: int | None, x_range: torch.Tensor | float, signed: bool) -> torch.Tensor:
    """Quantize inputs to the DAC's levels over ``[0, x_range]`` (or ``[-x_range, x_range]``).

    ``bits=None`` is an ideal DAC. Gradients pass straight through (for training).
    """
    if bits is None:
        return x
    x_range = torch.as_tensor(x_range, dtype=x.dtype, device=x.device).clamp_min(1e-12)
    lo, levels = _code_range(bits, signed)
    return _QuantizeSTE.apply(x, x_range / levels, float(lo), float(levels))


def adc_quantize(psum: torch.Tensor, bits: int | None, full_scale: float, signed: bool) -> torch.Tensor:
    """Quantize analog partial sums to the ADC's codes over ``[0, FS]`` or ``[-FS, FS]``."""
    if bits is None:
        return psum
    return dac_quantize(psum, bits, full_scale, signed)


@dataclass(frozen=True)
class ConvGeometry:
    """How a convolution's input is unrolled into crossbar rows (im2col), for :func:`crossbar_mvm`.

    Rows follow the weight's ``(cin, kh, kw)`` order, as ``F.unfold`` gives them, so tiles
    cut the same rows whichever way the columns are built.
    """

    kernel: tuple[int, int]
    dilation: tuple[int, int]
    padding: tuple[int, int]
    stride: tuple[int, int]

    def out_hw(self, h: int, w: int) -> tuple[int, int]:
        """Output height and width for an ``h x w`` input."""
        return tuple(
            (size + 2 * p - d * (k - 1) - 1) // s + 1
            for size, p, d, k, s in zip((h, w), self.padding, self.dilation, self.kernel, self.stride)
        )


class _Im2ColBlocks:
    """im2col of a chip-major image batch, one block of chips at a time, into reused buffers.

    Why not ``F.unfold`` on the whole batch: the unrolled input is ``kh*kw`` times the image
    batch (75 MB per forward of LeNet's second convolution at 50 chips), so building it in
    one piece costs a fresh allocation (page faults) plus ``F.unfold``'s slow short-run copy
    plus a transposing copy, more than the ADC path's matmuls of the same layer. Here the
    image block is first copied (small) into a zero-padded buffer ``(blk, cin, Hp, Wp, b)``
    with the sample innermost, so each kernel offset's window is runs of ``ow*b`` contiguous
    floats; one strided copy then gives ``(blk, rows, L*b)``, read as ``(blk, L*b, rows)`` by
    the matmul without a transpose. Columns are pixel-major, sample-minor inside a block.
    """

    def __init__(self, x: torch.Tensor, chips: int, geometry: ConvGeometry, block: int):
        n, self.cin, self.h, self.w = x.shape
        self.b = n // chips
        self.images = x.reshape(chips, self.b, self.cin, self.h, self.w)
        self.geometry = geometry
        self.oh, self.ow = geometry.out_hw(self.h, self.w)
        ph, pw = geometry.padding
        self.padded = x.new_zeros(block, self.cin, self.h + 2 * ph, self.w + 2 * pw, self.b)  # borders stay 0
        kh, kw = geometry.kernel
        self.cols = x.new_empty(block, self.cin * kh * kw, self.oh * self.ow * self.b)

    def __call__(self, c0: int, c1: int) -> torch.Tensor:
        """Rows of chips ``c0:c1`` as ``(c1-c0, L*b, rows)`` (a transposed view of a buffer)."""
        g, cb = self.geometry, c1 - c0
        ph, pw = g.padding
        self.padded[:cb, :, ph : ph + self.h, pw : pw + self.w] = self.images[c0:c1].permute(0, 2, 3, 4, 1)
        s0, s1, s2, s3, s4 = self.padded.stride()
        (kh, kw), (dh, dw), (sh, sw) = g.kernel, g.dilation, g.stride
        windows = self.padded.as_strided(
            (cb, self.cin, kh, kw, self.oh, self.ow, self.b), (s0, s1, dh * s2, dw * s3, sh * s2, sw * s3, s4)
        )
        cols = self.cols[:cb]
        cols.view(windows.shape).copy_(windows)
        return cols.transpose(1, 2)


class _TiledMVM(torch.autograd.Function):
    """Tiled MVM with per-partial-sum ADC, straight-through gradient.

    Inputs: ``x``, either rows ``(C, N, rows)`` or, with ``geometry``, the chip-major image
    batch ``(C*b, cin, H, W)`` of a convolution (``N = b*oh*ow``); ``cols``
    ``(C, out*K, rows)``, the conductances of every bit line, already divided by the ADC
    step, ordered so that the ``K = 2*S`` columns (polarity, slice) of one output are
    adjacent; ``col_weight`` ``(K,)``, the digital weight of each such column
    (``+-c_s * step``); ``w_max`` ``(C or 1, O)``, one scale per tensor (``O = 1``) or per
    output (``O = out``), applied after the shift-and-add as the digital periphery would.

    Forward, per block of chips (sized so its partial sums stay in cache) and per tile: one
    ``bmm`` gives the partial sums divided by the step, so the ADC is two in-place passes
    (``round_``, ``clamp_``) yielding its integer codes, and the shift-and-add is one
    ``addmv_`` of the ``(.., K)`` codes with ``col_weight``. Nothing of partial-sum size is
    allocated per block or kept for backward.

    Backward: with the ADC straight-through, ``d out / d rows`` is the matrix of effective
    weights ``w_max * sum_k col_weight[k] * cols[:, o, k]`` (exactly what autograd through
    the unfused ops gave), so both gradients are single matmuls (plus ``F.fold`` back onto
    the image for a convolution).
    """

    @staticmethod
    def forward(ctx, x, cols, col_weight, w_max, tile_rows: int, lo, hi, geometry: ConvGeometry | None,
                column_noise: float = 0.0):
        """Return ``(C, N, out)`` (sample-major for a convolution); ``lo is None``: ideal ADC.
        ``column_noise`` > 0: output-referred read noise, std ``column_noise * |x_tile|`` (in
        ADC code units) on every column's partial sum before the ADC."""
        chips, ncols, rows = cols.shape
        k = col_weight.numel()
        out_features = ncols // k
        if geometry is None:
            n = x.shape[1]
            per_chip = n * ncols
        else:
            oh, ow = geometry.out_hw(*x.shape[2:])
            n = x.shape[0] // chips * oh * ow
            per_chip = n * (ncols + rows)
        block = max(1, min(chips, PSUM_BLOCK_FLOATS // max(1, per_chip)))
        rows_of = (lambda c0, c1: x[c0:c1]) if geometry is None else _Im2ColBlocks(x, chips, geometry, block)
        out = x.new_empty(chips, n, out_features)
        buf = x.new_empty(block, n, ncols)  # reused: stays in cache
        acc_buf = None if geometry is None else x.new_empty(block, n * out_features)
        gt_all = cols.transpose(1, 2)  # (C, rows, out*K), a view: bmm reads it transposed
        w_max_c = w_max.view(w_max.shape[0], 1, -1).expand(chips, 1, w_max.shape[1])
        for c0 in range(0, chips, block):
            c1 = min(chips, c0 + block)
            psum = buf[: c1 - c0]
            xb = rows_of(c0, c1)
            acc = out[c0:c1] if geometry is None else acc_buf[: c1 - c0]
            flat_acc = acc.view(-1)
            for t0 in range(0, rows, tile_rows):
                t1 = min(rows, t0 + tile_rows)  # a short last tile: its missing rows add zero
                torch.bmm(xb[:, :, t0:t1], gt_all[c0:c1, t0:t1], out=psum)
                if column_noise > 0:
                    norms = xb[:, :, t0:t1].square().sum(-1, keepdim=True).sqrt_()  # (block, N, 1)
                    psum.add_(torch.randn_like(psum).mul_(norms.mul_(column_noise)))
                if lo is not None:
                    psum.round_().clamp_(lo, hi)
                # beta=0 on the first tile ignores acc's uninitialised memory (no zero fill).
                flat_acc.addmv_(psum.view(-1, k), col_weight, beta=0.0 if t0 == 0 else 1.0)
            if geometry is None:
                out[c0:c1].mul_(w_max_c[c0:c1])
            else:  # pixel-major -> sample-major while the block is in cache
                src = acc.view(c1 - c0, oh * ow, -1, out_features).transpose(1, 2)
                torch.mul(src, w_max_c[c0:c1].unsqueeze(1), out=out[c0:c1].view(src.shape))
        ctx.geometry = geometry
        ctx.save_for_backward(x, cols, col_weight, w_max)
        return out

    @staticmethod
    def backward(ctx, grad):
        """Straight-through gradients for ``x`` and ``cols``."""
        x, cols, col_weight, w_max = ctx.saved_tensors
        geometry = ctx.geometry
        chips, _, rows = cols.shape
        k = col_weight.numel()
        grad = grad * w_max.view(w_max.shape[0], 1, -1)
        grad_x = grad_cols = None
        if ctx.needs_input_grad[0]:
            weights = torch.einsum("k,cokr->cor", col_weight, cols.view(chips, -1, k, rows))
            grad_rows = torch.bmm(grad, weights)  # (C, N, rows)
            if geometry is None:
                grad_x = grad_rows
            else:
                n = x.shape[0]
                per_sample = grad_rows.reshape(n, -1, rows).transpose(1, 2)  # (n, rows, L)
                g = geometry
                grad_x = F.fold(per_sample, tuple(x.shape[2:]), g.kernel, g.dilation, g.padding, g.stride)
        if ctx.needs_input_grad[1]:
            if geometry is None:
                outer = torch.bmm(grad.transpose(1, 2), x)  # (C, out, rows)
            else:
                g = geometry
                unf = F.unfold(x, g.kernel, g.dilation, g.padding, g.stride)  # (n, rows, L)
                outer = torch.einsum(
                    "cblo,cbrl->cor",
                    grad.reshape(chips, -1, unf.shape[2], grad.shape[2]),
                    unf.reshape(chips, -1, rows, unf.shape[2]),
                )
            grad_cols = (outer.unsqueeze(2) * col_weight.view(1, 1, k, 1)).reshape(chips, -1, rows)
        return grad_x, grad_cols, None, None, None, None, None, None, None


def _bit_line_columns(g: torch.Tensor, targets: DeviceTargets, config: CIMConfig, scale: float) -> torch.Tensor:
    """``(C, out*K, rows)``: ``scale`` times the conductance of every bit line, fresh read noise included.

    The ``K = 2*S`` columns (polarity, slice) of one output are adjacent. Differential pairs
    already have a G+ and a G- column; a digital-sign layout puts positive and negative
    weights on separate columns (a device sits on the column of its weight's sign; the other
    column holds nothing there).
    """
    sigma = 0.0 if config.output_referred_read_noise else config.read_sigma_rel
    if sigma > 0:
        # Drawn in g's own layout (the samples of g + randn_like(g) * sigma), scaled in place.
        g = torch.randn_like(g).mul_(sigma * scale).add_(g, alpha=scale)
    elif scale != 1.0:
        g = g * scale
    chips, _, slices, out_features, rows = g.shape
    if config.differential:
        cols = g.permute(0, 3, 1, 2, 4).contiguous()  # (C, out, 2, S, rows)
    else:
        sign = targets.sign.reshape(targets.sign.shape[0], out_features, 1, rows)
        mag = g[:, 0].transpose(1, 2)  # (C, out, S, rows)
        cols = torch.stack([mag * (sign > 0), mag * (sign < 0)], dim=2)
    return cols.view(chips, out_features * 2 * slices, rows)


def crossbar_mvm(
    x: torch.Tensor,
    g: torch.Tensor,
    targets: DeviceTargets,
    config: CIMConfig,
    x_range: float,
    signed_input: bool,
    conv: ConvGeometry | None = None,
) -> torch.Tensor:
    """Tiled MVM of ``x`` ``(C, N, rows)`` with conductances ``g`` ``(C, P, S, out, rows)``.

    With ``conv``, ``x`` is instead a convolution's chip-major input ``(C*b, cin, H, W)``,
    unrolled here block by block (never whole), and ``N = b*oh*ow`` in sample-major order:
    the result reshapes to ``(C*b, oh, ow, out)``.

    Read noise (fresh) is drawn per device, once per call (one read of the arrays serves the
    whole batch, as on the chip), or with ``output_referred_read_noise`` on every column's
    partial sum, independently per input vector; each tile/slice/polarity/column partial sum goes through
    the ADC (full scale ``adc_range * tile.rows * x_range``); the digital periphery scales
    slices by ``c_s``, subtracts polarities, adds tiles and multiplies by ``w_max``.
    Gradients are straight-through (ADC as identity). Returns ``(C, N, out)``.
    """
    tile_rows = config.tile.rows
    if config.adc_bits is None:
        step, lo, hi = 1.0, None, None
    else:
        lo, hi = _code_range(config.adc_bits, signed_input)
        full_scale = max(config.adc_range * tile_rows * float(x_range), 1e-12)
        step = full_scale / hi
    # Dividing the (small) conductance tensor by the step once makes every partial sum come
    # out of the matmul already in ADC code units: one pass over the partial sums saved.
    cols = _bit_line_columns(g, targets, config, 1.0 / step)
    coeff = slice_coefficients(config, x.device).to(x.dtype)
    col_weight = torch.cat([coeff, -coeff]) * step  # (K,) in (polarity, slice) order
    w_max = targets.w_max.to(device=x.device, dtype=x.dtype)
    lo_f, hi_f = (None, None) if lo is None else (float(lo), float(hi))
    column_noise = config.read_sigma_rel / step if config.output_referred_read_noise else 0.0
    return _TiledMVM.apply(x, cols, col_weight, w_max, tile_rows, lo_f, hi_f, conv, column_noise)
