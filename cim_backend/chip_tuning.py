"""Per-chip fitting against a chip's read-back: the TSB and the baselines at equal information.

Every flow here knows a programmed chip only through one read of every device (the read-back,
installed by :mod:`cim_backend.calibration`) and fits a few parameters per chip by Adam on the
training inputs, with the backbone frozen:

* ``tsb``: the Tiny Shared Block (``k*k`` crossbar weights, write-verified, plus ``k`` digital
  biases), one block per chip; ``tsb_bias_only`` keeps ``A = 0`` and fits only the block's
  biases; ``tsb_shared`` fits ONE block on separate calibration chips and programs that same
  block on every chip (no per-chip read-back or fitting at deployment);
* ``bias``: only the digital biases of every layer (a per-chip offset added in the periphery;
  nothing is written to the crossbar);
* ``last_layer``: the last layer's weights, refitted per chip and reprogrammed once without
  write-verify (the fit expects the one-shot programming noise it will meet).

Fitting simulates the chip from its read-back with an ideal ADC (the deployment flow runs this
digitally); evaluation then runs the chip with its real ADC.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F
from torch import nn

from .calibration import _clear_readbacks, _install_readbacks
from .config import CIMConfig
from .layers import CIMLayer, CIMLinear, Mode
from .mapping import to_device_targets, weight_noise_std
from .network import cim_layers, repeat_for_chips
from .programming import program_tensor
from .tsb import TinySharedBlock, insert_tsb


@dataclass(frozen=True)
class FitConfig:
    """Adam on mini-batches of the training inputs; parameters are kept at each checkpoint."""

    checkpoints: tuple[int, ...] = (75, 150, 300)
    lr: float = 0.02
    batch_size: int = 64
    seed: int = 0

    @property
    def steps(self) -> int:
        """Steps of the whole run (the last checkpoint)."""
        return max(self.checkpoints)


@dataclass
class FitResult:
    """Snapshots of the fitted parameters by step, wall and CPU seconds for all chips."""

    snapshots: dict[int, list[torch.Tensor]] = field(default_factory=dict)
    seconds: float = 0.0
    cpu_seconds: float = 0.0


@contextmanager
def ideal_adc(model: nn.Module) -> Iterator[None]:
    """Run every CIM layer with an ideal ADC inside the block (configs restored after)."""
    layers = [layer for _, layer in cim_layers(model)]
    saved = [layer.cim_config for layer in layers]
    for layer in layers:
        layer.cim_config = replace(layer.cim_config, adc_bits=None)
    try:
        yield
    finally:
        for layer, cfg in zip(layers, saved):
            layer.cim_config = cfg


def fit_per_chip(model: nn.Module, params: Sequence[nn.Parameter], x: torch.Tensor, y: torch.Tensor, chips: int, cfg: FitConfig) -> FitResult:
    """Fit ``params`` (each with a leading chip dimension, or shared) against the read-back.

    The loss is summed over chips, so every chip's gradient is its own (a batch of chips fits
    like chips fitted one at a time, up to the shared mini-batches).
    """
    for p in model.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(list(params), lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    model.eval()
    result = FitResult()
    start, cpu = time.perf_counter(), time.process_time()
    _install_readbacks(model, cfg.seed)
    try:
        with ideal_adc(model):
            for step in range(1, cfg.steps + 1):
                idx = torch.randint(0, x.shape[0], (cfg.batch_size,), generator=gen)
                loss = F.cross_entropy(model(repeat_for_chips(x[idx], chips)), y[idx].repeat(chips)) * chips
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if step in cfg.checkpoints:
                    result.snapshots[step] = [p.detach().clone() for p in params]
    finally:
        _clear_readbacks(model)
    result.seconds, result.cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    return result


def restore(params: Sequence[nn.Parameter], snapshot: Sequence[torch.Tensor]) -> None:
    """Load a snapshot into ``params`` in place."""
    with torch.no_grad():
        for p, s in zip(params, snapshot):
            p.copy_(s)


class ChipBias(nn.Module):
    """A CIM layer followed by a per-chip offset of its digital bias (chip-major batches)."""

    def __init__(self, layer: CIMLayer, chips: int):
        super().__init__()
        self.layer = layer
        self.offset = nn.Parameter(torch.zeros(chips, layer.weight.shape[0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Layer output plus this chip's offset on every output channel."""
        y = self.layer(x)
        if self.layer.mode != Mode.CHIPS:
            return y
        chips = self.offset.shape[0]
        shape = (chips, 1, y.shape[1]) + (1,) * (y.dim() - 2)
        return (y.reshape(chips, -1, *y.shape[1:]) + self.offset.view(shape)).reshape(y.shape)


def insert_chip_biases(model: nn.Module, chips: int) -> list[nn.Parameter]:
    """Wrap every CIM layer (in place) in a :class:`ChipBias`; returns the offsets."""
    offsets: list[nn.Parameter] = []

    def wrap(module: nn.Module) -> None:
        for name, child in module.named_children():
            if isinstance(child, CIMLayer):
                wrapped = ChipBias(child, chips)
                offsets.append(wrapped.offset)
                setattr(module, name, wrapped)
            elif not isinstance(child, ChipBias):
                wrap(child)

    wrap(model)
    return offsets


class ChipLastLayer(nn.Module):
    """Per-chip weights of a final linear layer, fitted under its one-shot programming noise."""

    def __init__(self, layer: CIMLinear, chips: int):
        super().__init__()
        self.layer = layer
        self.weight = nn.Parameter(layer.weight.detach().clone().unsqueeze(0).repeat(chips, 1, 1))
        self.fitting = True
        cfg = layer.cim_config
        targets = to_device_targets(layer.weight, cfg)
        dev_sigma = cfg.device.variation.level_sigma(targets.g, cfg.sigma_rel)
        self.register_buffer("noise_std", weight_noise_std(targets, cfg, dev_sigma)[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """While fitting: the per-chip weights plus fresh programming noise; then the layer."""
        if not self.fitting:
            return self.layer(x)
        x = self.layer.quantize_input(x)
        chips = self.weight.shape[0]
        w = self.weight + torch.randn_like(self.weight) * self.noise_std
        y = torch.bmm(x.reshape(chips, -1, x.shape[-1]), w.transpose(1, 2))
        if self.layer.bias is not None:
            y = y + self.layer.bias
        return y.reshape(-1, y.shape[-1])

    def program(self, chip_ids: Sequence[int], seed: int, layer_key: int = 20_000) -> tuple[float, float]:
        """Reprogram each chip's last layer with its fitted weights (one shot, no verify).

        Returns (pulses, verify reads) per chip of the reprogramming.
        """
        pt = program_tensor(self.weight.detach(), self.layer.cim_config, chip_ids, seed, layer_key, batched=True)
        self.layer.programmed = pt
        self.fitting = False
        return float(pt.pulses.mean()), float(pt.verify_reads.mean())


def last_cim_linear(model: nn.Module) -> tuple[nn.Module, str, CIMLinear]:
    """(parent module, attribute name, layer) of the model's last CIM linear layer."""
    found = None
    for parent in model.modules():
        for name, child in parent.named_children():
            if isinstance(child, CIMLinear):
                found = (parent, name, child)
    if found is None:
        raise ValueError("model has no CIM linear layer")
    return found


def insert_chip_last_layer(model: nn.Module, chips: int) -> ChipLastLayer:
    """Wrap the last CIM linear layer (in place) for per-chip refitting."""
    parent, name, layer = last_cim_linear(model)
    wrapped = ChipLastLayer(layer, chips)
    setattr(parent, name, wrapped)
    return wrapped


def tsb_parameters(block: TinySharedBlock, bias_only: bool) -> list[nn.Parameter]:
    """The block's per-chip parameters to fit (only the biases when ``A`` stays 0)."""
    return [block.chip_bias] if bias_only else [block.chip_weight, block.chip_bias]


def add_tsb(model: nn.Module, width: int, config: CIMConfig, chips: int) -> TinySharedBlock:
    """Insert a TSB and give it ``chips`` trainable copies (1 for a block shared by all chips)."""
    block = insert_tsb(model, width, config)
    block.start_calibration(chips)
    return block


def program_shared_block(block: TinySharedBlock, chip_ids: Sequence[int], seed: int) -> None:
    """Program one fitted block (a single copy) onto every chip of ``chip_ids`` with write-verify."""
    n = len(chip_ids)
    block.chip_weight = nn.Parameter(block.chip_weight.detach().expand(n, -1, -1).clone())
    block.chip_bias = nn.Parameter(block.chip_bias.detach().expand(n, -1).clone())
    block.program(list(chip_ids), seed)


def copy_model(model: nn.Module) -> nn.Module:
    """Deep copy of a (possibly programmed) model; programmed tensors are copied too."""
    return copy.deepcopy(model)


EvalFn = Callable[[nn.Module], float]
