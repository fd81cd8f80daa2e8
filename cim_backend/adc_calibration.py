"""Per-layer ADC ranges set on text, for networks whose activations have heavy tails.

The default ADC full scale is a fixed fraction (``CIMConfig.adc_range``) of the largest
current a tile column could carry (every row at the DAC's full range, every device at its
largest conductance). That suits small image networks. A language model's projections see
inputs whose largest value is hundreds of times the typical one, so their partial sums fill a
tiny part of that scale and a 6-bit ADC reads most of them as zero (measured on SmolLM2-135M:
cross-entropy 4.3 -> 18.9 nats). A chip designer sets each layer's ADC range from the partial
sums it actually carries, as the DAC range is set from its inputs; here that is the
``quantile`` of the partial sums' magnitudes over a calibration text (1.0: the largest, so
nothing saturates; lower: the rare largest sums saturate, every other one is read finer).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import torch
from torch import nn

from .chip_tuning import ideal_adc
from .crossbar import _bit_line_columns, dac_quantize
from .errors import CIMStateError
from .layers import CIMLayer, CIMLinear
from .network import cim_layers

# torch.quantile refuses inputs above 2**24 elements; larger sets are subsampled evenly.
_QUANTILE_LIMIT = 1 << 24


def _partial_sum_level(layer: CIMLayer, x: torch.Tensor, quantile: float) -> float:
    """The ``quantile`` of ``|partial sum|`` over every tile, column and input vector of ``x``."""
    pt = layer.programmed
    cfg = layer.cim_config
    rows = cfg.tile.rows
    xq = dac_quantize(x, cfg.dac_bits, layer.input_range, bool(layer.input_signed)).reshape(-1, x.shape[-1])
    cols = _bit_line_columns(pt.g[:1], pt.targets, replace(cfg, read_noise=False), 1.0)[0]  # (out*K, in)
    sums = torch.cat([(xq[:, start:start + rows] @ cols[:, start:start + rows].T).abs().flatten()
                      for start in range(0, xq.shape[1], rows)])
    if quantile >= 1.0:
        return float(sums.max())
    if sums.numel() > _QUANTILE_LIMIT:
        sums = sums[:: -(-sums.numel() // _QUANTILE_LIMIT)]
    return float(torch.quantile(sums, quantile))


@torch.no_grad()
def calibrate_adc_ranges(model: nn.Module, inputs: torch.Tensor | Sequence[torch.Tensor],
                         quantile: float = 1.0) -> dict[str, float]:
    """Set every programmed linear CIM layer's ADC range from the partial sums of forwards over
    ``inputs`` (one batch, or several: the largest level of any counts; the network runs with
    ideal ADCs meanwhile); returns ``{layer name: adc_range}``."""
    if not 0.0 < quantile <= 1.0:
        raise ValueError(f"quantile must be in (0, 1], got {quantile}")
    levels: dict[str, float] = {}
    layers = dict(cim_layers(model))
    for name, layer in layers.items():
        if not isinstance(layer, CIMLinear) or layer.programmed is None:
            raise CIMStateError(f"{name}: per-layer ADC ranges need programmed linear layers")

    def hook(name: str):
        def record(layer: CIMLayer, args: tuple) -> None:
            level = _partial_sum_level(layer, args[0], quantile)
            levels[name] = max(levels.get(name, 0.0), level)
        return record

    handles = [layer.register_forward_pre_hook(hook(name)) for name, layer in layers.items()]
    try:
        with ideal_adc(model):
            for x in [inputs] if isinstance(inputs, torch.Tensor) else inputs:
                model(x)
    finally:
        for handle in handles:
            handle.remove()
    ranges = {name: levels[name] / (layer.cim_config.tile.rows * max(float(layer.input_range), 1e-12))
              for name, layer in layers.items() if name in levels}
    set_adc_ranges(model, ranges)
    return ranges


def set_adc_ranges(model: nn.Module, ranges: dict[str, float]) -> None:
    """Give each named CIM layer its own ADC range (a fraction of the column's largest current,
    clamped to ``(0, 1]``); layers not named keep theirs."""
    for name, layer in cim_layers(model):
        if name in ranges:
            layer.cim_config = replace(layer.cim_config, adc_range=min(max(ranges[name], 1e-9), 1.0))
