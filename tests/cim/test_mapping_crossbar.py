"""Mapping, crossbar arithmetic and the switch-everything-off equivalences."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cim_backend.config import CIMConfig, TileShape, ideal_config
from cim_backend.crossbar import ConvGeometry, adc_quantize, crossbar_mvm, dac_quantize
from cim_backend.devices import DeviceModel
from cim_backend.layers import CIMConv2d, CIMLinear, Mode
from cim_backend.mapping import from_conductances, quantize_weight, slice_coefficients, to_device_targets
from cim_backend.network import calibrate_input_ranges, convert, program_model, to_digital
from cim_backend.programming import program_tensor


def _quiet(cfg: CIMConfig) -> CIMConfig:
    return CIMConfig(**{**cfg.__dict__, "programming_variation": False, "read_noise": False})


@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("weight_bits,m,differential", [(4, 2, True), (8, 2, False), (4, 1, True), (6, 3, False)])
def test_slicing_reconstructs_integer_quantization(weight_bits, m, differential, per_channel):
    device = DeviceModel("t", m, 1.0, 40.0, 0.1, 0.0)
    cfg = CIMConfig(device=device, weight_bits=weight_bits, differential=differential, per_channel_scales=per_channel)
    w = torch.randn(32, 17)
    targets = to_device_targets(w, cfg)
    full = 2**weight_bits - 1
    w_max = w.abs().amax(dim=1, keepdim=True) if per_channel else w.abs().max()
    assert targets.w_max.shape == ((1, 32) if per_channel else (1, 1))
    expected = torch.round(w.abs() / w_max * full) / full * w_max * torch.sign(w)
    torch.testing.assert_close(from_conductances(targets.g, targets, cfg)[0], expected, atol=1e-6, rtol=0)
    levels = targets.g * (2**m - 1)
    torch.testing.assert_close(levels, levels.round(), atol=1e-5, rtol=0)  # devices sit on their levels
    assert targets.g.shape == (1, 2 if differential else 1, weight_bits // m, 32, 17)


def test_one_bit_per_device_is_binary():
    device = DeviceModel("binary", 1, 1.0, 40.0, 0.1, 0.0)
    cfg = CIMConfig(device=device, weight_bits=4)
    targets = to_device_targets(torch.randn(50), cfg)
    assert set(targets.g.unique().tolist()) <= {0.0, 1.0}
    assert targets.g.shape[2] == 4


def test_dac_and_adc_quantizers():
    x = torch.linspace(-1, 1, 1001)
    q = dac_quantize(x, 4, 1.0, signed=True)
    assert q.unique().numel() == 15  # 2**(4-1)-1 levels per side plus zero
    assert (q - x).abs().max() <= 1 / 7 / 2 + 1e-6
    u = dac_quantize(x.clamp_min(0), 3, 1.0, signed=False)
    assert u.unique().numel() == 8
    assert torch.equal(dac_quantize(x, None, 1.0, True), x)
    assert torch.equal(adc_quantize(x, None, 1.0, True), x)
    x.requires_grad_(True)
    dac_quantize(x, 4, 1.0, True).sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))  # straight-through


def _net():
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 6, 3, stride=2), nn.ReLU(), nn.Flatten(), nn.Linear(54, 5)
    )


@pytest.mark.parametrize("chips", [1, 4])
def test_all_nonidealities_off_equals_digital(chips):
    torch.manual_seed(0)
    net = _net()
    x = torch.randn(6, 3, 8, 8)
    cim = convert(net, ideal_config(CIMConfig(tile=TileShape(16, 16))))
    calibrate_input_ranges(cim, x)
    program_model(cim, range(chips), seed=0)
    out = cim(x.repeat(chips, 1, 1, 1)).reshape(chips, 6, 5)
    ref = net(x)
    if chips == 1:
        assert torch.equal(out[0], ref)  # same kernels: bit-for-bit
    else:
        torch.testing.assert_close(out, ref.expand_as(out), atol=1e-6, rtol=1e-6)  # grouped-conv summation order


def _geometry_net():
    """Convolutions with stride, dilation, asymmetric padding and a non-square input."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 6, (3, 2), stride=2, dilation=(2, 1), padding=(2, 0)),
        nn.ReLU(), nn.Flatten(), nn.LazyLinear(5),
    )


@pytest.mark.parametrize("differential,per_channel", [(True, False), (False, False), (True, True)])
@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("net_fn", [_net, _geometry_net])
def test_crossbar_path_with_ideal_adc_equals_fast_path(differential, signed, net_fn, per_channel):
    torch.manual_seed(0)
    cfg = CIMConfig(tile=TileShape(8, 4), read_noise=False, differential=differential,  # variation on, several tiles
                    per_channel_scales=per_channel)
    net = net_fn()
    x = torch.rand(5, 3, 8, 8 if net_fn is _net else 9) * (2 if signed else 1) - (1 if signed else 0)
    net(x)  # materialise the lazy layer
    cim = convert(net, cfg)
    calibrate_input_ranges(cim, x)
    program_model(cim, range(3), seed=2)
    xb = x.repeat(3, 1, 1, 1).requires_grad_(True)
    fast = cim(xb)
    (fast_grad,) = torch.autograd.grad(fast.square().sum(), xb)
    for m in cim.modules():
        if isinstance(m, (CIMLinear, CIMConv2d)):
            m.use_crossbar_path = True
    tiled = cim(xb)
    torch.testing.assert_close(tiled, fast, atol=1e-4, rtol=1e-4)
    (tiled_grad,) = torch.autograd.grad(tiled.square().sum(), xb)  # im2col's fold backward included
    torch.testing.assert_close(tiled_grad, fast_grad, atol=1e-4, rtol=1e-4)


def _reference_crossbar(x, g, targets, cfg, x_range, signed):
    """The tiled path op by op, as first written: the definition the fused kernel must match."""
    if cfg.read_sigma_rel > 0:
        g = g + torch.randn_like(g) * cfg.read_sigma_rel
    if not cfg.differential:
        sign = targets.sign.reshape(targets.sign.shape[0], 1, 1, *g.shape[3:])
        g = torch.cat([g * (sign > 0), g * (sign < 0)], dim=1)
    chips, n, rows = x.shape
    tr = cfg.tile.rows
    tiles = -(-rows // tr)
    x = F.pad(x, (0, tiles * tr - rows)).reshape(chips, n, tiles, tr)
    g = F.pad(g, (0, tiles * tr - rows)).reshape(*g.shape[:4], tiles, tr)
    psum = torch.einsum("cntr,cpsotr->cnpsot", x, g)
    psum = adc_quantize(psum, cfg.adc_bits, cfg.adc_range * tr * x_range, signed)
    per_pol = (psum * slice_coefficients(cfg).view(1, 1, 1, -1, 1, 1)).sum(dim=(3, 5))
    return (per_pol[:, :, 0] - per_pol[:, :, 1]) * targets.w_max.view(targets.w_max.shape[0], 1, -1)


def _mostly_equal(a, b, step):
    """Equal but for rare one-code ADC flips (a partial sum on a rounding boundary summed in another order)."""
    diff = (a - b).abs()
    assert float((diff > 1e-4).float().mean()) < 0.01
    assert float(diff.max().detach()) < 2 * step


@pytest.mark.parametrize("differential,per_channel", [(True, False), (False, False), (True, True)])
@pytest.mark.parametrize("signed", [False, True])
def test_fused_adc_path_matches_the_op_by_op_definition(differential, signed, per_channel):
    """Read noise on (same samples), a short last tile, chips with their own scales, both gradients."""
    cfg = CIMConfig(tile=TileShape(16, 8), adc_bits=5, differential=differential, per_channel_scales=per_channel)
    chips, n, rows, out = 3, 40, 37, 6
    pt = program_tensor(torch.randn(chips, out, rows), cfg, range(chips), seed=4, batched=True)
    x = (torch.randn(chips, n, rows) if signed else torch.rand(chips, n, rows)).requires_grad_(True)
    g = pt.g.clone().requires_grad_(True)
    torch.manual_seed(7)
    got = crossbar_mvm(x, g, pt.targets, cfg, 1.0, signed)
    torch.manual_seed(7)
    ref = _reference_crossbar(x, g, pt.targets, cfg, 1.0, signed)
    code = cfg.adc_range * 16 / (2 ** (cfg.adc_bits - 1 if signed else cfg.adc_bits) - 1)
    _mostly_equal(got, ref, code * float(pt.targets.w_max.max()))
    torch.manual_seed(7)
    ideal = crossbar_mvm(x, g, pt.targets, CIMConfig(**{**cfg.__dict__, "adc_bits": None}), 1.0, signed)
    assert float((ideal - got).abs().max().detach()) > 0.05  # the 5-bit ADC really quantizes here
    upstream = torch.randn_like(ref)
    got_grads = torch.autograd.grad(got, (x, g), upstream)
    ref_grads = torch.autograd.grad(ref, (x, g), upstream)
    for a, b in zip(got_grads, ref_grads):  # straight-through: identical whatever the codes
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_fused_conv_adc_path_matches_unfold_definition():
    """The block-wise im2col gives the same rows, tiles and sample order as F.unfold."""
    cfg = CIMConfig(tile=TileShape(10, 8), adc_bits=6)
    geometry = ConvGeometry((3, 2), (1, 2), (1, 0), (2, 1))
    chips, b, cin, h, w, out = 3, 4, 3, 7, 9, 5
    pt = program_tensor(torch.randn(out, cin, 3, 2), cfg, range(chips), seed=1)
    g = pt.g.reshape(*pt.g.shape[:4], -1)
    images = torch.rand(chips * b, cin, h, w).requires_grad_(True)
    g.requires_grad_(True)
    torch.manual_seed(3)
    got = crossbar_mvm(images, g, pt.targets, cfg, 1.0, False, conv=geometry)
    cols = F.unfold(images, geometry.kernel, geometry.dilation, geometry.padding, geometry.stride)  # (n, rows, L)
    length = cols.shape[2]
    torch.manual_seed(3)
    ref = _reference_crossbar(cols.transpose(1, 2).reshape(chips, b * length, -1), g, pt.targets, cfg, 1.0, False)
    assert got.shape == ref.shape == (chips, b * length, out) and geometry.out_hw(h, w) == (4, 7)
    _mostly_equal(got, ref, cfg.adc_range * 10 / 63 * float(pt.targets.w_max.max()))
    upstream = torch.randn_like(ref)
    for a, r in zip(torch.autograd.grad(got, (images, g), upstream), torch.autograd.grad(ref, (images, g), upstream)):
        torch.testing.assert_close(a, r, atol=1e-4, rtol=1e-4)


def test_adc_with_enough_bits_equals_digital():
    torch.manual_seed(0)
    net = _net()
    x = torch.rand(5, 3, 8, 8)
    base = _quiet(CIMConfig(tile=TileShape(8, 8), dac_bits=None, adc_range=1.0))
    ref_model = convert(net, base)
    calibrate_input_ranges(ref_model, x)
    program_model(ref_model, [0], seed=0)
    ref = ref_model(x)  # quantized weights, ideal converters
    fine = convert(net, CIMConfig(**{**base.__dict__, "adc_bits": 24}))
    coarse = convert(net, CIMConfig(**{**base.__dict__, "adc_bits": 3}))
    for model in (fine, coarse):
        calibrate_input_ranges(model, x)
        program_model(model, [0], seed=0)
    torch.testing.assert_close(fine(x), ref, atol=1e-4, rtol=1e-4)
    assert (coarse(x) - ref).abs().max() > 1e-2  # and a coarse ADC really does quantize


@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("crossbar_path", [False, True])
def test_quantized_noiseless_chip_equals_fake_quant_digital(per_channel, crossbar_path):
    """A chip without variation, noise or faults computes the 4-bit weights written out by hand
    (one scale per tensor, or one per output row), on the fast and the tiled path."""
    torch.manual_seed(0)
    lin = nn.Linear(40, 7)
    cfg = _quiet(CIMConfig(dac_bits=None, tile=TileShape(16, 16), per_channel_scales=per_channel))
    cim = convert(nn.Sequential(lin), cfg)
    cim[0].use_crossbar_path = crossbar_path
    x = torch.randn(9, 40)
    calibrate_input_ranges(cim, x)
    program_model(cim, [0], seed=0)
    w = lin.weight.detach()
    w_max = w.abs().amax(dim=1, keepdim=True) if per_channel else w.abs().max()
    by_hand = torch.round(w.abs() / w_max * 15) / 15 * w_max * torch.sign(w)
    torch.testing.assert_close(quantize_weight(w, cfg), by_hand, atol=1e-6, rtol=0)
    torch.testing.assert_close(cim(x), F.linear(x, by_hand, lin.bias), atol=1e-5, rtol=1e-5)


def test_per_channel_scales_keep_small_rows_through_an_outlier_row():
    """One row 50x larger: per tensor it rounds most other weights to 0; per channel it does not."""
    torch.manual_seed(0)
    w = torch.randn(16, 64)
    w[3] *= 50
    errors = {}
    for per_channel in (False, True):
        q = quantize_weight(w, CIMConfig(per_channel_scales=per_channel))
        rest = torch.arange(16) != 3
        errors[per_channel] = float((q[rest] - w[rest]).norm() / w[rest].norm())
    assert errors[False] > 0.9 and errors[True] < 0.15


def test_convert_roundtrip_and_modes():
    net = _net()
    cim = convert(net, CIMConfig())
    assert sum(isinstance(m, (CIMLinear, CIMConv2d)) for m in cim.modules()) == 3
    back = to_digital(cim)
    assert not any(isinstance(m, (CIMLinear, CIMConv2d)) for m in back.modules())
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(back(x), net(x))
    assert all(m.mode == Mode.DIGITAL for m in cim.modules() if isinstance(m, (CIMLinear, CIMConv2d)))
