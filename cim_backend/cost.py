"""Cost model: programming (pulses, time, energy) and inference per MVM, NeuroSim-style.

Constants and where they come from (each is an order-of-magnitude figure, not a signed-off
circuit number):

* Programming pulse width/energy and read time: per device preset
  (:mod:`cim_backend.devices`, with sources or flagged as assumptions).
* Cell read energy: physics, ``V_read**2 * G * t_read`` at mid-range conductance.
* ADC: energy ``fom_fj_per_step * 2**bits`` (Walden figure of merit; ~10 fJ/conversion-step
  is typical of recent SAR ADCs in B. Murmann's ADC performance survey); 1 ns per
  conversion and 8 columns sharing one ADC (NeuroSim's default column mux) are assumptions.
* DAC / word-line driver: 0.05 pJ per row activation (assumption).
* Digital shift-and-add: 0.1 pJ per 32-bit add (Horowitz, "Computing's energy problem",
  ISSCC 2014, 45 nm: 32-bit int add 0.1 pJ).
* Programming is serial, one device at a time, every device gets one pulse, and each verify
  iteration costs one read (a conservative upper bound: real chips program a row in parallel).
  A read-back of the chip (:func:`readback_cost`) is priced the same way: one serial read
  per device.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from .config import CIMConfig
from .devices import DeviceModel
from .layers import CIMConv2d, CIMLayer
from .mapping import tile_grid
from .network import cim_layers


@dataclass(frozen=True)
class PeripheryConstants:
    """Periphery constants (see the module docstring for sources)."""

    adc_fom_fj_per_step: float = 10.0
    adc_ns: float = 1.0
    columns_per_adc: int = 8
    row_drive_pj: float = 0.05
    digital_add_pj: float = 0.1


@dataclass
class ProgrammingCost:
    """Cost of programming one chip."""

    pulses: float
    verify_reads: float
    time_s: float
    energy_j: float

    def as_dict(self) -> dict[str, float]:
        """Plain dict (for JSON)."""
        return asdict(self)


def programming_cost(pulses: float, verify_reads: float, device: DeviceModel) -> ProgrammingCost:
    """Time and energy of ``pulses`` programming pulses and ``verify_reads`` verify reads."""
    time_s = (pulses * device.program_pulse_ns + verify_reads * device.read_ns) * 1e-9
    energy_j = (pulses * device.program_pulse_pj + verify_reads * device.read_energy_pj()) * 1e-12
    return ProgrammingCost(pulses, verify_reads, time_s, energy_j)


def expected_verify_cost(device: DeviceModel, config: CIMConfig, devices: int, trials: int = 20000) -> ProgrammingCost:
    """Monte-Carlo estimate of the cost of write-verifying ``devices`` devices.

    Runs the same iterative loop as :mod:`cim_backend.programming` on ``trials`` devices and
    scales; useful to price a verify budget before programming anything.
    """
    from .programming import chip_generator, write_verify

    gen = chip_generator(0, 0, 0)
    target = torch.full((trials,), 0.5)
    sigma = config.device.variation.level_sigma(target, config.sigma_rel)
    g = target + sigma * torch.randn(trials, generator=gen)
    if config.clips:
        g = g.clamp(0.0, 1.0)
    wv = config.write_verify
    _, pulses, reads = write_verify(
        g, target, torch.ones(trials, dtype=torch.bool), sigma * wv.step_sigma_factor,
        wv.tolerance(config.sigma_rel), config.read_sigma_rel, wv, gen, clip=config.clips,
    )
    scale = devices / trials
    return programming_cost(float(pulses.sum()) * scale, float(reads.sum()) * scale, device)


def readback_cost(devices: int, device: DeviceModel) -> ProgrammingCost:
    """Time and energy of reading every one of ``devices`` devices once (no pulses).

    What a flow that calibrates against a read-back of the chip (TSB) pays on top of
    programming: one serial read per device, priced like a verify read.
    """
    if devices < 0:
        raise ValueError(f"devices must be >= 0, got {devices}")
    return programming_cost(0.0, float(devices), device)


def devices_per_chip(model: nn.Module) -> int:
    """Physical devices holding the weights of all CIM layers of one chip.

    ``weights x slices x polarities`` per layer (a differential pair counts both devices,
    an unused one included; biases are digital). A Tiny Shared Block is not a CIM layer and
    is not counted: this is what a read-back of the backbone touches.
    """
    total = 0
    for _, layer in cim_layers(model):
        cfg = layer.cim_config
        total += layer.weight.numel() * cfg.slices * cfg.polarities
    return total


@dataclass
class MVMCost:
    """Cost of one matrix-vector multiply of one layer (all its tiles, slices, polarities)."""

    arrays: int
    cell_reads: int
    adc_conversions: int
    digital_adds: int
    energy_pj: float
    latency_ns: float


def mvm_cost(layer: CIMLayer, constants: PeripheryConstants = PeripheryConstants()) -> MVMCost:
    """Cost of one MVM: every array reads all rows at once, every used column is converted."""
    cfg = layer.cim_config
    cols = layer.weight.shape[0]
    rows = layer.weight[0].numel()
    copies = cfg.slices * 2  # a digital-sign layout still needs + and - column sets
    tr, tc = tile_grid(rows, cols, cfg.tile)
    arrays = tr * tc * copies
    cell_reads = rows * cols * copies
    conversions = tr * cols * copies
    adc_bits = cfg.adc_bits or 8
    adc_pj = constants.adc_fom_fj_per_step * 2**adc_bits * 1e-3
    energy = (
        cell_reads * cfg.device.read_energy_pj()
        + rows * tc * copies * constants.row_drive_pj
        + conversions * adc_pj
        + conversions * constants.digital_add_pj
    )
    latency = cfg.device.read_ns + constants.columns_per_adc * constants.adc_ns
    return MVMCost(arrays, cell_reads, conversions, conversions, energy, latency)


@torch.no_grad()
def inference_cost(model: nn.Module, sample: torch.Tensor, constants: PeripheryConstants = PeripheryConstants()) -> dict[str, float]:
    """Per-inference totals for one input: energy (pJ), ADC conversions, adds, MVM count.

    Convolutions run one MVM per output pixel; the count comes from a digital forward.
    """
    mvms: dict[str, int] = {}
    hooks = []
    for name, layer in cim_layers(model):
        def hook(mod, inp, out, name=name):
            # One MVM per output pixel of a convolution, per token of a linear layer.
            mvms[name] = out.shape[2:].numel() if isinstance(mod, CIMConv2d) else out.shape[1:-1].numel()
        hooks.append(layer.register_forward_hook(hook))
    modes = {n: layer.mode for n, layer in cim_layers(model)}
    for _, layer in cim_layers(model):
        layer.mode = layer.mode.DIGITAL
    try:
        model(sample[:1])
    finally:
        for h in hooks:
            h.remove()
        for n, layer in cim_layers(model):
            layer.mode = modes[n]
    totals = {"energy_pj": 0.0, "adc_conversions": 0.0, "digital_adds": 0.0, "mvms": 0.0, "latency_ns": 0.0}
    for name, layer in cim_layers(model):
        cost = mvm_cost(layer, constants)
        n = mvms[name]
        totals["energy_pj"] += n * cost.energy_pj
        totals["adc_conversions"] += n * cost.adc_conversions
        totals["digital_adds"] += n * cost.digital_adds
        totals["mvms"] += n
        totals["latency_ns"] += n * cost.latency_ns
    return totals


# An estimate for a CPU doing the same matrix work, for comparison (order of magnitude, 45 nm
# figures from Horowitz, ISSCC 2014): a 32-bit float multiply-add 4.6 pJ (3.7 + 0.9), and
# every weight read from DRAM once per token at ~20 pJ per bit (a 64-bit DRAM access ~1.3-2.6
# nJ), the weights at ``cpu_weight_bits`` (a 4-bit GGUF's 4.5 bits with its scales).
CPU_MAC_PJ = 4.6
DRAM_PJ_PER_BIT = 20.0


@dataclass(frozen=True)
class TokenCost:
    """One token through every chip layer once (a language model's decode step)."""

    macs: int
    energy_pj: float
    latency_ns: float
    cpu_energy_pj: float


def token_cost(model: nn.Module, tsb_sites: dict[str, tuple[int, int]] | None = None, cpu_weight_bits: float = 4.5,
               constants: PeripheryConstants = PeripheryConstants()) -> TokenCost:
    """Energy and latency of one token: one MVM per chip layer, in sequence (a serial upper
    bound on latency: q, k and v could run at once), plus the Tiny Shared Block's MVMs when
    ``tsb_sites`` maps each site to ``(output channels, block width)`` (one k x k MVM per group).
    The CPU figure prices the same multiply-adds and one DRAM read of every weight."""
    macs, energy, latency = 0, 0.0, 0.0
    for _, layer in cim_layers(model):
        cost = mvm_cost(layer, constants)
        macs += layer.weight.numel()
        energy += cost.energy_pj
        latency += cost.latency_ns
    for channels, width in (tsb_sites or {}).values():
        groups = -(-channels // width)
        block = _block_layer(width, next(layer for _, layer in cim_layers(model)).cim_config)
        cost = mvm_cost(block, constants)
        macs += groups * width * width
        energy += groups * cost.energy_pj
        latency += groups * cost.latency_ns  # the groups of one site go through the one block in turn
    weights = sum(layer.weight.numel() for _, layer in cim_layers(model))
    cpu = macs * CPU_MAC_PJ + weights * cpu_weight_bits * DRAM_PJ_PER_BIT
    return TokenCost(macs, energy, latency, cpu)


def _block_layer(width: int, config: CIMConfig) -> CIMLayer:
    """A stand-in layer of the block's shape, for its MVM cost."""
    from .layers import CIMLinear

    return CIMLinear(width, width, bias=False, config=config)
