"""The Tiny Shared Block (TSB, Qin et al. 2024): one tiny 1x1 convolution shared by all layers.

Block
    A residual 1x1 convolution of width ``k``: ``z = y + A y + b`` with ``A`` a ``k x k``
    matrix (on the crossbar, write-verified) and ``b`` a ``k``-vector (digital periphery, like
    every bias in this library). ``A = 0, b = 0`` is the identity, so inserting the block
    leaves the backbone's function unchanged until the block is trained.

Sharing rule (layers of different widths)
    After every CIM layer, its ``C`` output channels (features of a linear layer; channels of
    a convolution at every pixel; for a transformer, channels of every token) are cut into
    ``ceil(C / k)`` consecutive groups of ``k``; the *same* block maps every group. A last,
    partial group is zero-padded to ``k`` and the padded outputs are dropped, so a layer narrower
    than ``k`` uses the top-left corner of ``A``. Hence a single set of ``k*k`` crossbar weights
    serves every layer whatever its width; each insertion site keeps only its own DAC range
    register (a digital constant).

Per-chip calibration
    A real deployment calibrates the block of every chip against that chip. Here each chip
    has its own copy of ``(A, b)`` (tensors with a leading chip dimension) so all chips
    calibrate in one vectorised run; gradients of the summed loss are independent per chip.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import CIMConfig
from .crossbar import dac_quantize
from .errors import CIMStateError
from .layers import CIMLayer, Mode
from .mapping import slice_coefficients
from .programming import ProgrammedTensor, program_tensor


def verified_device_sigma(config: CIMConfig) -> float:
    """Approximate per-device std after write-verify plus one inference read.

    The accepted error is about uniform within the tolerance (variance ``tol**2 / 3``), the
    verify read's own noise stays in the device, and the inference read adds its noise again.
    Used only for noise injection while calibrating; programming simulates the real loop.
    """
    tol = config.write_verify.tolerance(config.sigma_rel)
    read = config.read_sigma_rel
    return math.sqrt(tol**2 / 3.0 + 2.0 * read**2)


class TinySharedBlock(nn.Module):
    """The shared ``k x k`` residual 1x1 convolution (see the module docstring for the rule)."""

    def __init__(self, width: int, config: CIMConfig):
        super().__init__()
        self.width = width
        self.cim_config = config
        self.weight = nn.Parameter(torch.zeros(width, width))
        self.bias = nn.Parameter(torch.zeros(width))
        self.mode = Mode.DIGITAL
        self.chip_weight: nn.Parameter | None = None
        self.chip_bias: nn.Parameter | None = None
        self.programmed: ProgrammedTensor | None = None

    @property
    def crossbar_weights(self) -> int:
        """Weights stored on the crossbar (``k*k``); the ``k`` biases are digital."""
        return self.width * self.width

    def start_calibration(self, chips: int) -> None:
        """Give every chip its own trainable copy of the block, starting from the shared one."""
        self.chip_weight = nn.Parameter(self.weight.detach().clone().unsqueeze(0).repeat(chips, 1, 1))
        self.chip_bias = nn.Parameter(self.bias.detach().clone().unsqueeze(0).repeat(chips, 1))
        self.programmed = None
        self.mode = Mode.NOISE

    def _noisy_chip_weight(self) -> torch.Tensor:
        """Per-chip weights with the write-verified residual + read noise injected (calibration)."""
        w = self.chip_weight
        cfg = self.cim_config
        if cfg.weight_bits is None or (cfg.sigma_rel == 0 and cfg.read_sigma_rel == 0):
            return w
        coeff = slice_coefficients(cfg)
        unit = verified_device_sigma(cfg) * float((cfg.polarities * (coeff**2).sum()).sqrt())
        w_max = w.detach().abs().flatten(1).amax(1).clamp_min(1e-12).view(-1, 1, 1)
        return w + torch.randn_like(w) * w_max * unit

    def program(self, chip_ids: list[int], seed: int, layer_key: int = 10_000) -> ProgrammedTensor:
        """Program each chip's calibrated ``A`` with write-verify on all of its weights."""
        if self.chip_weight is None:
            raise CIMStateError("calibrate the block (start_calibration) before programming it")
        w = self.chip_weight.detach()
        mask = torch.ones_like(w, dtype=torch.bool)
        self.programmed = program_tensor(w, self.cim_config, chip_ids, seed, layer_key, mask, batched=True)
        self.mode = Mode.CHIPS
        return self.programmed

    def current(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(A, b)`` for this forward, shaped ``(C or 1, k, k)`` and ``(C or 1, k)``."""
        if self.mode == Mode.DIGITAL:
            return self.weight.unsqueeze(0), self.bias.unsqueeze(0)
        if self.chip_weight is None:
            raise CIMStateError("block has no per-chip state")
        if self.mode == Mode.NOISE:
            return self._noisy_chip_weight(), self.chip_bias
        if self.programmed is None:
            raise CIMStateError("block in chips mode but not programmed")
        return self.programmed.read(), self.chip_bias.detach()

    def forward(self, y: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
        """Apply the block to channel groups of ``y`` (chip-major batch).

        ``y`` is ``(C*B, channels, ...)`` (convolution features) or, with ``channels_last``,
        ``(C*B, ..., channels)`` (linear layers, e.g. a transformer's ``(batch, tokens, ch)``).
        """
        if channels_last and y.dim() > 2:
            return self.forward(y.movedim(-1, 1)).movedim(1, -1)
        a, b = self.current()
        chips = a.shape[0]
        n, ch = y.shape[:2]
        k = self.width
        groups = -(-ch // k)
        pad = groups * k - ch
        spatial = y.shape[2:]
        yp = F.pad(y.movedim(1, -1), (0, pad)).movedim(-1, 1) if pad else y
        yg = yp.reshape(chips, n // chips, groups, k, -1)
        z = torch.einsum("cij,cbgjs->cbgis", a, yg) + b.view(chips, 1, 1, k, 1)
        out = (yg + z).reshape(n, groups * k, *spatial)
        return out[:, :ch] if pad else out


class TSBSite(nn.Module):
    """A CIM layer followed by the shared block, with this site's own DAC range register.

    ``exact_residual``: the block adds ``A DAC(y) + b`` to the layer's output ``y`` itself
    (the residual is a digital add, only the block's input crosses a DAC); without it the
    residual is the DAC-quantized ``y`` too, as in the reproduction. Language models need the
    former: their projections' outputs have outliers hundreds of times the typical value, so
    an 8-bit DAC over that range would zero most of each output.
    """

    def __init__(self, layer: CIMLayer, block: TinySharedBlock, exact_residual: bool = False):
        super().__init__()
        self.layer = layer
        self.block = block
        self.exact_residual = exact_residual
        self.register_buffer("input_range", torch.tensor(0.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Layer, then (DAC-quantized) block."""
        y = self.layer(x)
        if self.block.mode == Mode.DIGITAL:
            return y
        cfg = self.block.cim_config
        if self.block.mode == Mode.NOISE:
            with torch.no_grad():
                self.input_range.copy_(torch.maximum(self.input_range, y.detach().abs().max()))
        yq = dac_quantize(y, cfg.dac_bits, self.input_range, signed=True)
        z = self.block(yq, channels_last=isinstance(self.layer, nn.Linear))
        return y + (z - yq) if self.exact_residual else z


def insert_tsb(model: nn.Module, width: int, config: CIMConfig, exact_residual: bool = False) -> TinySharedBlock:
    """Wrap every CIM layer of ``model`` (in place) in a :class:`TSBSite` sharing one block
    (``exact_residual``: see :class:`TSBSite`)."""
    block = TinySharedBlock(width, config)

    def wrap(module: nn.Module) -> None:
        for name, child in module.named_children():
            if isinstance(child, CIMLayer):
                setattr(module, name, TSBSite(child, block, exact_residual))
            elif not isinstance(child, (TSBSite, TinySharedBlock)):
                wrap(child)

    wrap(model)
    return block


def tsb_weight_count(block: TinySharedBlock) -> int:
    """Crossbar weights of the block (what gets write-verified)."""
    return block.crossbar_weights
