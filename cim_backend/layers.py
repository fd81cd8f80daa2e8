"""Torch modules that run on the simulated crossbars: ``CIMLinear``, ``CIMConv2d``.

Each layer has three modes:

* ``digital``: the plain float layer (the "digital accuracy" reference).
* ``noise``: noise-injection training; every forward quantizes the weights (straight-through)
  and adds a fresh sample of the programming variation plus read noise, drawn with the
  per-weight std implied by the device model (so training sees the chip's statistics).
* ``chips``: inference on programmed chips. The batch dimension is *chip-major*: a tensor of
  ``C * B`` samples holds ``B`` inputs for chip 0, then ``B`` for chip 1, ... All chips run in
  one batched matmul / grouped convolution, never a Python loop over chips.

Inputs go through the DAC quantizer; the range is a per-layer register learnt by a running
maximum while training or calibrating (a digital-periphery constant once deployed).
"""

from __future__ import annotations

from enum import Enum

import torch
import torch.nn.functional as F
from torch import nn

from .config import CIMConfig
from .crossbar import crossbar_mvm, dac_quantize
from .errors import CIMStateError
from .mapping import quantize_weight_ste, to_device_targets, weight_noise_std
from .programming import ProgrammedTensor


class Mode(str, Enum):
    """Execution mode of a CIM layer."""

    DIGITAL = "digital"
    NOISE = "noise"
    CHIPS = "chips"


class CIMLayer(nn.Module):
    """Shared machinery of the CIM layers (mode, DAC, noise injection, programmed state)."""

    weight: nn.Parameter
    bias: nn.Parameter | None

    def _init_cim(self, config: CIMConfig) -> None:
        self.cim_config = config
        self.mode = Mode.DIGITAL
        self.programmed: ProgrammedTensor | None = None
        self.readback: torch.Tensor | None = None
        self.use_crossbar_path = False
        self.observing = False
        self.register_buffer("input_range", torch.tensor(0.0))
        self.register_buffer("input_signed", torch.tensor(False))

    @property
    def chips(self) -> int:
        """Number of chips this layer currently runs (1 outside ``chips`` mode)."""
        return self.programmed.chips if self.mode == Mode.CHIPS and self.programmed is not None else 1

    def _observe(self, x: torch.Tensor) -> None:
        if (self.training or self.observing) and self.mode != Mode.CHIPS:
            with torch.no_grad():
                self.input_range.copy_(torch.maximum(self.input_range, x.detach().abs().max()))
                self.input_signed |= bool((x.detach() < 0).any())

    def quantize_input(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the DAC (a no-op in digital mode or with an ideal DAC)."""
        self._observe(x)
        if self.mode == Mode.DIGITAL or self.cim_config.dac_bits is None:
            return x
        if float(self.input_range) <= 0:
            raise CIMStateError("DAC range not calibrated: train or run calibrate_input_ranges() first")
        return dac_quantize(x, self.cim_config.dac_bits, self.input_range, bool(self.input_signed))

    def noisy_weight(self) -> torch.Tensor:
        """Quantized weight plus one fresh variation + read-noise sample (training)."""
        cfg = self.cim_config
        wq = quantize_weight_ste(self.weight, cfg)
        if cfg.weight_bits is None or (cfg.sigma_rel == 0 and cfg.read_sigma_rel == 0):
            return wq
        targets = to_device_targets(self.weight, cfg)
        dev_sigma = cfg.device.variation.level_sigma(targets.g, cfg.sigma_rel)
        dev_sigma = (dev_sigma**2 + cfg.read_sigma_rel**2).sqrt()
        std = weight_noise_std(targets, cfg, dev_sigma)[0]
        return wq + torch.randn_like(wq) * std.to(wq.dtype)

    def chip_weights(self) -> torch.Tensor:
        """Per-chip effective weights for one inference ``(C, *shape)``, fresh read noise included.

        With a read-back installed (TSB calibration) the chip is modelled as the read-back
        weights plus fresh read noise: the flow only knows the chip through that read.
        """
        if self.programmed is None:
            raise CIMStateError("layer is in chips mode but has not been programmed")
        if self.readback is not None:
            noise = torch.randn_like(self.readback) * self.programmed.read_noise_std()
            return self.readback + noise if self.cim_config.read_sigma_rel > 0 else self.readback
        return self.programmed.read()

    def use_fast_path(self) -> bool:
        """True when tiles/ADC are linear, so one matmul with effective weights is exact."""
        return self.cim_config.adc_bits is None and not self.use_crossbar_path

    def _crossbar(self, cols: torch.Tensor) -> torch.Tensor:
        """Detailed tiled path for ``cols`` ``(C, N, rows)``; returns ``(C, N, out)``."""
        pt = self.programmed
        if pt is None:
            raise CIMStateError("crossbar path needs a programmed layer")
        g = pt.g.reshape(*pt.g.shape[:4], -1)
        return crossbar_mvm(cols, g, pt.targets, self.cim_config, float(self.input_range), bool(self.input_signed))


class CIMLinear(nn.Linear, CIMLayer):
    """``nn.Linear`` on simulated crossbars (bias added in the digital periphery)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, config: CIMConfig | None = None):
        super().__init__(in_features, out_features, bias=bias)
        self._init_cim(config or CIMConfig())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run in the current mode; in ``chips`` mode ``x`` is chip-major ``(C*B, ..., in)``."""
        x = self.quantize_input(x)
        if self.mode == Mode.DIGITAL:
            return F.linear(x, self.weight, self.bias)
        if self.mode == Mode.NOISE:
            return F.linear(x, self.noisy_weight(), self.bias)
        chips = self.chips
        lead = x.shape[:-1]
        xc = x.reshape(chips, -1, self.in_features)
        if self.use_fast_path():
            y = torch.bmm(xc, self.chip_weights().transpose(1, 2))
        else:
            y = self._crossbar(xc)
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*lead, self.out_features)


class CIMConv2d(nn.Conv2d, CIMLayer):
    """``nn.Conv2d`` (groups=1, zero padding) on simulated crossbars via im2col mapping."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, config: CIMConfig | None = None, **kwargs):
        super().__init__(in_channels, out_channels, kernel_size, **kwargs)
        if self.groups != 1 or self.padding_mode != "zeros":
            raise CIMStateError("CIMConv2d supports groups=1 and zero padding only")
        self._init_cim(config or CIMConfig())

    def _conv(self, x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None, groups: int = 1) -> torch.Tensor:
        return F.conv2d(x, w, bias, self.stride, self.padding, self.dilation, groups)

    def _chips_forward(self, x: torch.Tensor) -> torch.Tensor:
        chips = self.chips
        n, cin, h, w = x.shape
        b = n // chips
        if self.use_fast_path():
            # Grouped convolution: group k sees chip k's input channels and weights.
            xg = x.reshape(chips, b, cin, h, w).transpose(0, 1).reshape(b, chips * cin, h, w)
            wk = self.chip_weights().reshape(chips * self.out_channels, cin, *self.kernel_size)
            bias = None if self.bias is None else self.bias.repeat(chips)
            y = self._conv(xg, wk, bias, groups=chips)
            return y.reshape(b, chips, self.out_channels, *y.shape[2:]).transpose(0, 1).reshape(n, self.out_channels, *y.shape[2:])
        cols = F.unfold(x, self.kernel_size, self.dilation, self.padding, self.stride)  # (n, rows, L)
        out_hw = [
            (size + 2 * p - d * (k - 1) - 1) // s + 1
            for size, p, d, k, s in zip((h, w), self.padding, self.dilation, self.kernel_size, self.stride)
        ]
        length = cols.shape[-1]
        y = self._crossbar(cols.transpose(1, 2).reshape(chips, b * length, -1))  # (C, b*L, out)
        y = y.reshape(n, length, self.out_channels).transpose(1, 2)
        if self.bias is not None:
            y = y + self.bias.view(1, -1, 1)
        return y.reshape(n, self.out_channels, *out_hw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run in the current mode; in ``chips`` mode ``x`` is chip-major ``(C*B, Cin, H, W)``."""
        x = self.quantize_input(x)
        if self.mode == Mode.DIGITAL:
            return self._conv(x, self.weight, self.bias)
        if self.mode == Mode.NOISE:
            return self._conv(x, self.noisy_weight(), self.bias)
        return self._chips_forward(x)
