"""Mapping, crossbar arithmetic and the switch-everything-off equivalences."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cim_backend.config import CIMConfig, TileShape, ideal_config
from cim_backend.crossbar import adc_quantize, dac_quantize
from cim_backend.devices import DeviceModel
from cim_backend.layers import CIMConv2d, CIMLinear, Mode
from cim_backend.mapping import from_conductances, quantize_weight, to_device_targets
from cim_backend.network import calibrate_input_ranges, convert, program_model, to_digital


def _quiet(cfg: CIMConfig) -> CIMConfig:
    return CIMConfig(**{**cfg.__dict__, "programming_variation": False, "read_noise": False})


@pytest.mark.parametrize("weight_bits,m,differential", [(4, 2, True), (8, 2, False), (4, 1, True), (6, 3, False)])
def test_slicing_reconstructs_integer_quantization(weight_bits, m, differential):
    device = DeviceModel("t", m, 1.0, 40.0, 0.1, 0.0)
    cfg = CIMConfig(device=device, weight_bits=weight_bits, differential=differential)
    w = torch.randn(32, 17)
    targets = to_device_targets(w, cfg)
    full = 2**weight_bits - 1
    w_max = w.abs().max()
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


def test_crossbar_path_with_ideal_adc_equals_fast_path():
    torch.manual_seed(0)
    cfg = CIMConfig(tile=TileShape(8, 4), read_noise=False)  # variation on, several tiles
    cim = convert(_net(), cfg)
    x = torch.rand(5, 3, 8, 8)
    calibrate_input_ranges(cim, x)
    program_model(cim, range(3), seed=2)
    xb = x.repeat(3, 1, 1, 1)
    fast = cim(xb)
    for m in cim.modules():
        if isinstance(m, (CIMLinear, CIMConv2d)):
            m.use_crossbar_path = True
    torch.testing.assert_close(cim(xb), fast, atol=1e-4, rtol=1e-4)


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


def test_quantized_noiseless_chip_equals_fake_quant_digital():
    torch.manual_seed(0)
    lin = nn.Linear(40, 7)
    cfg = _quiet(CIMConfig(dac_bits=None))
    cim = convert(nn.Sequential(lin), cfg)
    x = torch.randn(9, 40)
    calibrate_input_ranges(cim, x)
    program_model(cim, [0], seed=0)
    expected = F.linear(x, quantize_weight(lin.weight, cfg), lin.bias)
    torch.testing.assert_close(cim(x), expected, atol=1e-5, rtol=1e-5)


def test_convert_roundtrip_and_modes():
    net = _net()
    cim = convert(net, CIMConfig())
    assert sum(isinstance(m, (CIMLinear, CIMConv2d)) for m in cim.modules()) == 3
    back = to_digital(cim)
    assert not any(isinstance(m, (CIMLinear, CIMConv2d)) for m in back.modules())
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(back(x), net(x))
    assert all(m.mode == Mode.DIGITAL for m in cim.modules() if isinstance(m, (CIMLinear, CIMConv2d)))
