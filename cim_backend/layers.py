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
from .crossbar import ConvGeometry, crossbar_mvm, dac_quantize
from .errors import CIMStateError
from .mapping import from_conductances, quantize_weight_ste, to_device_targets, weight_noise_std
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
        # Effective weights of an installed read-back (fast path); see set_readback.
        self.readback: torch.Tensor | None = None
        # (weights, conductances) as installed by set_readback: the crossbar path trusts the
        # conductances only while ``readback`` is still that very weights tensor.
        self._readback_pair: tuple[torch.Tensor, torch.Tensor] | None = None
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

    def set_readback(self, g: torch.Tensor | None, weights: torch.Tensor | None = None) -> None:
        """Model the chip as the read-back conductances ``g`` ``(C, P, S, *shape)`` (None: clear).

        Both paths then see the chip only through that read (plus fresh read noise): the
        fast path through its effective weights (``readback``; ``weights`` if given, else
        built from ``g``), the crossbar/ADC path through ``g`` itself, since partial sums and
        their ADC codes depend on every device, not only on the weights they add up to.
        """
        if g is None:
            self.readback, self._readback_pair = None, None
            return
        pt = self.programmed
        if pt is None:
            raise CIMStateError("program the layer before installing a read-back")
        if tuple(g.shape) != tuple(pt.g.shape):
            raise CIMStateError(f"read-back shape {tuple(g.shape)} != programmed {tuple(pt.g.shape)}")
        w = from_conductances(g, pt.targets, self.cim_config) if weights is None else weights
        self.readback, self._readback_pair = w, (w, g)

    @property
    def readback_g(self) -> torch.Tensor | None:
        """Conductances of the installed read-back, or None (none installed, or ``readback``
        was replaced by bare effective weights, which carry no device values)."""
        pair = self._readback_pair
        if pair is None or self.readback is None or pair[0] is not self.readback:
            return None
        return pair[1]

    def chip_weights(self) -> torch.Tensor:
        """Per-chip effective weights for one inference ``(C, *shape)``, fresh read noise included
        (none when read noise is output-referred: :meth:`output_read_noise` adds it).

        With a read-back installed (TSB calibration) the chip is modelled as the read-back
        weights plus fresh read noise: the flow only knows the chip through that read.
        """
        if self.programmed is None:
            raise CIMStateError("layer is in chips mode but has not been programmed")
        if self.cim_config.output_referred_read_noise:
            return self.programmed.effective() if self.readback is None else self.readback
        if self.readback is not None:
            noise = torch.randn_like(self.readback) * self.programmed.read_noise_std()
            return self.readback + noise if self.cim_config.read_sigma_rel > 0 else self.readback
        return self.programmed.read()

    def output_read_noise(self, y: torch.Tensor, input_square_sums: torch.Tensor) -> torch.Tensor:
        """``y`` ``(C, N, out)`` plus output-referred read noise: per output, std ``sigma_w *
        sqrt(sum_i x_i^2)`` where ``input_square_sums`` ``(C, N, 1)`` holds ``sum_i x_i^2`` of
        each input vector and ``sigma_w`` is one read's per-weight std (constant along a row)."""
        if not self.cim_config.output_referred_read_noise or self.cim_config.read_sigma_rel == 0:
            return y
        sigma = self.programmed.read_noise_std().reshape(-1, self.programmed.targets.w_max.shape[1])
        # The noise's size is not something to learn through (and sqrt has no gradient at 0).
        std = input_square_sums.detach().sqrt() * sigma.unsqueeze(1).to(y.dtype)  # (C, N, out or 1)
        return y + torch.randn_like(y) * std

    def use_fast_path(self) -> bool:
        """True when tiles/ADC are linear, so one matmul with effective weights is exact."""
        return self.cim_config.adc_bits is None and not self.use_crossbar_path

    def _crossbar(self, cols: torch.Tensor, conv: ConvGeometry | None = None) -> torch.Tensor:
        """Detailed tiled path for ``cols`` ``(C, N, rows)`` (or images, see ``crossbar_mvm``); ``(C, N, out)``.

        Runs on the read-back conductances when one is installed (as :meth:`chip_weights`
        does), else on the true ones; ``crossbar_mvm`` adds the fresh read noise.
        """
        pt = self.programmed
        if pt is None:
            raise CIMStateError("crossbar path needs a programmed layer")
        g = pt.g
        if self.readback is not None:
            g = self.readback_g
            if g is None:
                # Falling back to pt.g would let the flow see the true chip (the bug this
                # guards against): effective weights alone cannot feed per-device partial sums.
                raise CIMStateError(
                    "the crossbar/ADC path needs the read-back's conductances: install it with set_readback(g)"
                )
        g = g.reshape(*g.shape[:4], -1)
        return crossbar_mvm(
            cols, g, pt.targets, self.cim_config, float(self.input_range), bool(self.input_signed), conv=conv
        )


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
            y = self.output_read_noise(y, xc.square().sum(-1, keepdim=True))
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
            y = y.reshape(b, chips, self.out_channels, *y.shape[2:]).transpose(0, 1).reshape(n, self.out_channels, *y.shape[2:])
            return self._conv_output_read_noise(x, y, chips)
        geometry = ConvGeometry(
            tuple(self.kernel_size), tuple(self.dilation), tuple(self.padding), tuple(self.stride)
        )
        oh, ow = geometry.out_hw(h, w)
        y = self._crossbar(x, geometry)  # (C, b*oh*ow, out), sample-major
        # A channels-last view, no copy: also the layout max-pooling runs fastest on.
        y = y.view(n, oh, ow, self.out_channels).permute(0, 3, 1, 2)
        if self.bias is not None:
            y = y + self.bias.view(1, -1, 1, 1)
        return y

    def _conv_output_read_noise(self, x: torch.Tensor, y: torch.Tensor, chips: int) -> torch.Tensor:
        """Output-referred read noise on ``y`` ``(C*b, out, oh, ow)``: every output pixel is one
        read of the columns by its receptive field ``x``."""
        if not self.cim_config.output_referred_read_noise or self.cim_config.read_sigma_rel == 0:
            return y
        ones = x.new_ones(1, self.in_channels, *self.kernel_size)
        sums = self._conv(x.square(), ones, None)  # (C*b, 1, oh, ow): sum of x^2 per receptive field
        n, out, oh, ow = y.shape
        flat = y.permute(0, 2, 3, 1).reshape(chips, -1, out)
        noisy = self.output_read_noise(flat, sums.permute(0, 2, 3, 1).reshape(chips, -1, 1))
        return noisy.reshape(n, oh, ow, out).permute(0, 3, 1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run in the current mode; in ``chips`` mode ``x`` is chip-major ``(C*B, Cin, H, W)``."""
        x = self.quantize_input(x)
        if self.mode == Mode.DIGITAL:
            return self._conv(x, self.weight, self.bias)
        if self.mode == Mode.NOISE:
            return self._conv(x, self.noisy_weight(), self.bias)
        return self._chips_forward(x)
