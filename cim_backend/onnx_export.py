"""Export one programmed chip to ONNX and run it with onnxruntime.

The exported graph holds the chip's *programmed* effective weights (variation and write-verify
included), the DAC quantizers of every layer and TSB site (``Div, Round, Clip, Mul``), and the
chip's calibrated TSB expanded to a block-diagonal 1x1 convolution per site. Read noise is a
run-time effect and is not part of a deterministic graph; compare against a torch simulation
with read noise off. The ADC is not exported (use ``adc_bits=None``, the fast path).
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .errors import CIMExportError
from .layers import CIMConv2d, CIMLayer, Mode
from .tsb import TSBSite


def _dac_params(bits: int | None, x_range: torch.Tensor, signed: bool) -> tuple[torch.Tensor, float, float] | None:
    if bits is None:
        return None
    levels = 2 ** (bits - 1) - 1 if signed else 2**bits - 1
    lo = -levels if signed else 0
    step = x_range.detach().clamp_min(1e-12) / levels
    return step, float(lo), float(levels)


class _Quant(nn.Module):
    def __init__(self, params: tuple[torch.Tensor, float, float] | None):
        super().__init__()
        self.enabled = params is not None
        if params is not None:
            self.register_buffer("step", params[0].clone())
            self.lo, self.hi = params[1], params[2]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """DAC quantization as plain ops (exported as Div, Round, Clip, Mul)."""
        if not self.enabled:
            return x
        return torch.clamp(torch.round(x / self.step), self.lo, self.hi) * self.step


class FrozenCIMLayer(nn.Module):
    """Chip ``chip``'s programmed copy of a CIM layer: DAC, then a plain linear/conv op."""

    def __init__(self, layer: CIMLayer, chip: int):
        super().__init__()
        if layer.mode != Mode.CHIPS or layer.programmed is None:
            raise CIMExportError("export needs layers programmed onto chips (program_model first)")
        if layer.cim_config.adc_bits is not None:
            raise CIMExportError("ADC quantization is not exported; use adc_bits=None")
        cfg = layer.cim_config
        self.quant = _Quant(_dac_params(cfg.dac_bits, layer.input_range, bool(layer.input_signed)))
        self.register_buffer("weight", layer.programmed.select([chip]).effective()[0].detach().clone())
        self.register_buffer("bias", None if layer.bias is None else layer.bias.detach().clone())
        self.conv = isinstance(layer, CIMConv2d)
        if self.conv:
            self.conv_args = (layer.stride, layer.padding, layer.dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """DAC, then the chip's effective weights."""
        x = self.quant(x)
        if self.conv:
            return F.conv2d(x, self.weight, self.bias, *self.conv_args)
        return F.linear(x, self.weight, self.bias)


class FrozenTSB(nn.Module):
    """Chip ``chip``'s TSB at one site as a block-diagonal channel map (residual)."""

    def __init__(self, site: TSBSite, chip: int):
        super().__init__()
        block = site.block
        if block.programmed is None or block.chip_bias is None:
            raise CIMExportError("export needs a calibrated, programmed TSB")
        channels = site.layer.weight.shape[0]
        k = block.width
        groups = -(-channels // k)
        a = block.programmed.select([chip]).effective()[0].detach()
        full = torch.block_diag(*([a] * groups))[:channels, :channels]
        self.register_buffer("matrix", full.clone())
        self.register_buffer("bias", block.chip_bias[chip].detach().repeat(groups)[:channels].clone())
        self.quant = _Quant(_dac_params(block.cim_config.dac_bits, site.input_range, True))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        """DAC, then ``y + M y + b`` over channels (dim 1 for conv maps, last dim otherwise)."""
        y = self.quant(y)
        if y.dim() == 4:
            z = F.conv2d(y, self.matrix[:, :, None, None], self.bias)
        else:
            z = F.linear(y, self.matrix, self.bias)
        return y + z


def _freeze(module: nn.Module, chip: int) -> None:
    for name, child in module.named_children():
        if isinstance(child, TSBSite):
            block_on = child.block.mode != Mode.DIGITAL
            frozen = FrozenCIMLayer(child.layer, chip)
            setattr(module, name, nn.Sequential(frozen, FrozenTSB(child, chip)) if block_on else frozen)
        elif isinstance(child, CIMLayer):
            setattr(module, name, FrozenCIMLayer(child, chip))
        else:
            _freeze(child, chip)


def freeze_chip(model: nn.Module, chip: int) -> nn.Module:
    """A plain, deterministic torch copy of chip ``chip`` of a programmed model."""
    frozen = copy.deepcopy(model)
    _freeze(frozen, chip)
    return frozen.eval()


def export_chip(model: nn.Module, chip: int, path: str | Path, sample: torch.Tensor) -> Path:
    """Write chip ``chip`` of ``model`` as an ONNX graph (dynamic batch) to ``path``."""
    try:
        import onnx  # noqa: F401  (the exporter needs it)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise CIMExportError("ONNX export needs the 'onnx' package (pip install onnx)") from exc
    frozen = freeze_chip(model, chip)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad(), warnings.catch_warnings():
        # The TorchScript exporter is deprecated but needs no onnxscript; the graph is simple.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            frozen, (sample,), str(path), input_names=["x"], output_names=["logits"],
            dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17, dynamo=False,
        )
    return path


def run_onnx(path: str | Path, x: torch.Tensor) -> np.ndarray:
    """Run an exported chip with onnxruntime (CPU) on ``x``."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["logits"], {"x": x.detach().numpy().astype(np.float32)})[0]
