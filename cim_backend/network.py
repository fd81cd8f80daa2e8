"""Whole-model operations: convert to/from CIM layers, switch modes, program chips, evaluate.

``convert(model, config)`` swaps every ``nn.Linear``/``nn.Conv2d`` for its CIM twin (weights
copied); ``to_digital`` swaps back. ``program_model`` programs all CIM layers onto a batch of
chips; ``evaluate_chips`` runs a test set through every chip in one vectorised forward per
mini-batch and returns one accuracy per chip.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .config import CIMConfig
from .errors import CIMConfigError
from .layers import CIMConv2d, CIMLayer, CIMLinear, Mode
from .programming import ProgrammedTensor, program_tensor, verify_programmed


def _replace_children(module: nn.Module, fn, include: Callable[[str], bool] | None = None, prefix: str = "") -> None:
    for name, child in module.named_children():
        qualified = f"{prefix}{name}"
        new = fn(child) if include is None or include(qualified) else child
        if new is not child:
            setattr(module, name, new)
        else:
            _replace_children(child, fn, include, f"{qualified}.")


def _to_cim(child: nn.Module, config: CIMConfig) -> nn.Module:
    if isinstance(child, CIMLayer):
        return child
    if type(child) is nn.Linear:
        new = CIMLinear(child.in_features, child.out_features, child.bias is not None, config=config)
    elif type(child) is nn.Conv2d:
        if child.groups != 1 or child.padding_mode != "zeros":
            raise CIMConfigError(f"cannot map {child}: only groups=1, zero-padded convolutions")
        new = CIMConv2d(
            child.in_channels, child.out_channels, child.kernel_size, config=config, stride=child.stride,
            padding=child.padding, dilation=child.dilation, bias=child.bias is not None,
        )
    else:
        return child
    new.load_state_dict(child.state_dict(), strict=False)
    return new


def convert(model: nn.Module, config: CIMConfig, inplace: bool = False,
            include: Callable[[str], bool] | None = None) -> nn.Module:
    """Return ``model`` with every Linear/Conv2d replaced by a CIM layer using ``config``;
    with ``include``, only those whose qualified name (``model.layers.0.self_attn.q_proj``)
    it accepts (e.g. a transformer's attention and MLP projections, not its LM head)."""
    model = model if inplace else copy.deepcopy(model)
    _replace_children(model, lambda c: _to_cim(c, config), include)
    return model


def _to_plain(child: nn.Module) -> nn.Module:
    if isinstance(child, CIMLinear):
        new = nn.Linear(child.in_features, child.out_features, child.bias is not None)
    elif isinstance(child, CIMConv2d):
        new = nn.Conv2d(
            child.in_channels, child.out_channels, child.kernel_size, stride=child.stride,
            padding=child.padding, dilation=child.dilation, bias=child.bias is not None,
        )
    else:
        return child
    new.weight.data.copy_(child.weight.data)
    if child.bias is not None:
        new.bias.data.copy_(child.bias.data)
    return new


def to_digital(model: nn.Module, inplace: bool = False) -> nn.Module:
    """Inverse of :func:`convert`: plain torch layers with the same (digital) weights."""
    model = model if inplace else copy.deepcopy(model)
    _replace_children(model, _to_plain)
    return model


def cim_layers(model: nn.Module) -> Iterator[tuple[str, CIMLayer]]:
    """``(name, layer)`` for every CIM layer in definition order."""
    for name, mod in model.named_modules():
        if isinstance(mod, CIMLayer):
            yield name, mod


def set_mode(model: nn.Module, mode: Mode | str) -> None:
    """Put every CIM layer in ``mode`` (``digital``, ``noise`` or ``chips``)."""
    for _, layer in cim_layers(model):
        layer.mode = Mode(mode)


@torch.no_grad()
def calibrate_input_ranges(model: nn.Module, x: torch.Tensor) -> None:
    """Set each layer's DAC range from a digital forward over ``x`` (running max)."""
    layers = [layer for _, layer in cim_layers(model)]
    modes = [layer.mode for layer in layers]
    for layer in layers:
        layer.mode, layer.observing = Mode.DIGITAL, True
    try:
        model(x)
    finally:
        for layer, mode in zip(layers, modes):
            layer.mode, layer.observing = mode, False


@dataclass
class ProgramReport:
    """Totals of one programming run."""

    chips: int
    weights: int
    verified_weights: int
    pulses_per_chip: float
    verify_reads_per_chip: float

    @property
    def verified_fraction(self) -> float:
        """Fraction of the weights that were write-verified."""
        return self.verified_weights / max(self.weights, 1)


def program_model(
    model: nn.Module,
    chip_ids: Sequence[int],
    seed: int,
    verify_masks: dict[str, torch.Tensor] | None = None,
    compact_verify: bool = False,
) -> ProgramReport:
    """Program every CIM layer onto chips ``chip_ids`` and switch them to ``chips`` mode.

    ``verify_masks`` maps layer names to boolean masks of weights to write-verify
    (``compact_verify``: see :func:`cim_backend.programming.write_verify`).
    """
    verify_masks = verify_masks or {}
    unknown = set(verify_masks) - {n for n, _ in cim_layers(model)}
    if unknown:
        raise CIMConfigError(f"verify masks for unknown layers: {sorted(unknown)}")
    weights = verified = 0
    pulses = reads = 0.0
    for key, (name, layer) in enumerate(cim_layers(model)):
        mask = verify_masks.get(name)
        pt = program_tensor(layer.weight, layer.cim_config, chip_ids, seed, layer_key=key, verify_mask=mask,
                            compact_verify=compact_verify)
        layer.programmed, layer.readback, layer.mode = pt, None, Mode.CHIPS
        weights += layer.weight.numel()
        verified += int(pt.verified[0].sum())
        pulses += float(pt.pulses.mean())
        reads += float(pt.verify_reads.mean())
    return ProgramReport(len(list(chip_ids)), weights, verified, pulses, reads)


def verify_selected(model: nn.Module, verify_masks: dict[str, torch.Tensor], seed: int) -> dict[str, ProgrammedTensor]:
    """On a model programmed with ``seed`` and no write-verify, write-verify the weights each
    mask selects (:func:`cim_backend.programming.verify_programmed`: the chip that programming
    with these ``verify_masks`` and ``compact_verify`` gives, without programming every device
    again). Returns the changed layers' previous programming, for :func:`restore_programmed`."""
    layers = dict(cim_layers(model))
    unknown = set(verify_masks) - set(layers)
    if unknown:
        raise CIMConfigError(f"verify masks for unknown layers: {sorted(unknown)}")
    previous = {}
    for name, mask in verify_masks.items():
        layer = layers[name]
        if layer.programmed is None:
            raise CIMConfigError(f"{name}: not programmed")
        previous[name] = layer.programmed
        layer.programmed = verify_programmed(layer.programmed, mask, seed)
        layer.set_readback(None)
    return previous


def restore_programmed(model: nn.Module, previous: dict[str, ProgrammedTensor]) -> None:
    """Put back the programming :func:`verify_selected` returned."""
    layers = dict(cim_layers(model))
    for name, programmed in previous.items():
        layers[name].programmed = programmed
        layers[name].set_readback(None)


def repeat_for_chips(x: torch.Tensor, chips: int) -> torch.Tensor:
    """Chip-major batch: ``x`` repeated once per chip along dimension 0."""
    return x.repeat(chips, *([1] * (x.dim() - 1)))


# Samples (chips x inputs) per vectorised forward: small enough for activations to stay in
# cache, large enough to amortise per-call overhead (measured on LeNet/digits, 1 thread:
# 200 chips x 24 inputs runs ~1.8x faster than 200 x 360).
CHIP_BATCH_SAMPLES = 4096


def _auto_batch(chips: int, n: int, batch_size: int | None) -> int:
    return batch_size or max(1, min(n, CHIP_BATCH_SAMPLES // max(chips, 1)))


@torch.no_grad()
def chip_logits(model: nn.Module, x: torch.Tensor, chips: int, batch_size: int | None = None) -> torch.Tensor:
    """Logits ``(chips, N, classes)`` of every chip on inputs ``x`` (fresh read noise per batch).

    ``batch_size`` inputs (default: about ``CHIP_BATCH_SAMPLES / chips``) go through all chips
    in one forward.
    """
    batch_size = _auto_batch(chips, x.shape[0], batch_size)
    outs = []
    for start in range(0, x.shape[0], batch_size):
        xb = x[start : start + batch_size]
        y = model(repeat_for_chips(xb, chips))
        outs.append(y.reshape(chips, xb.shape[0], -1))
    return torch.cat(outs, dim=1)


@torch.no_grad()
def evaluate_chips(model: nn.Module, x: torch.Tensor, y: torch.Tensor, chips: int, batch_size: int | None = None) -> torch.Tensor:
    """Accuracy of each programmed chip, shape ``(chips,)``."""
    model.eval()
    logits = chip_logits(model, x, chips, batch_size)
    return (logits.argmax(-1) == y.unsqueeze(0)).float().mean(dim=1)


@torch.no_grad()
def evaluate_digital(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Accuracy of the model with every CIM layer in digital mode (modes restored after)."""
    layers = [layer for _, layer in cim_layers(model)]
    modes = [layer.mode for layer in layers]
    set_mode(model, Mode.DIGITAL)
    model.eval()
    try:
        return float((model(x).argmax(-1) == y).float().mean())
    finally:
        for layer, mode in zip(layers, modes):
            layer.mode = mode
