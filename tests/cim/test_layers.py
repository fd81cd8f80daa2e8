"""CIM layers: vectorised chips vs a loop over chips, noise injection, DAC ranges, errors."""

import pytest
import torch
from torch import nn

from cim_backend.config import CIMConfig, TileShape
from cim_backend.devices import weight_sigma_formula
from cim_backend.errors import CIMConfigError, CIMStateError
from cim_backend.layers import CIMLinear, Mode
from cim_backend.network import (
    calibrate_input_ranges, cim_layers, convert, evaluate_chips, program_model, set_mode,
)


def _net():
    return nn.Sequential(
        nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(6 * 16, 10)
    )


def test_vectorised_chips_equal_loop_over_single_chips():
    torch.manual_seed(0)
    cfg = CIMConfig(read_noise=False, tile=TileShape(32, 32))
    x, y = torch.rand(40, 1, 8, 8), torch.randint(0, 10, (40,))
    many = convert(_net(), cfg)
    calibrate_input_ranges(many, x)
    one = convert(many, cfg)  # same weights and DAC ranges
    program_model(many, range(6), seed=11)
    batched = evaluate_chips(many, x, y, 6)
    logits = many(x.repeat(6, 1, 1, 1)).reshape(6, 40, 10)
    for chip in range(6):
        program_model(one, [chip], seed=11)
        torch.testing.assert_close(one(x), logits[chip], atol=1e-5, rtol=1e-5)
        looped = (one(x).argmax(-1) == y).float().mean()
        assert float(looped) == pytest.approx(float(batched[chip]))
    assert batched.std() > 0  # the chips really differ


def test_noise_injection_draws_formula_std_each_forward():
    torch.manual_seed(0)
    cfg = CIMConfig(differential=False, read_noise=False, dac_bits=None)
    layer = CIMLinear(256, 256, config=cfg)
    layer.mode = Mode.NOISE
    a, b = layer.noisy_weight(), layer.noisy_weight()
    assert not torch.equal(a, b)  # fresh variation per forward
    from cim_backend.mapping import quantize_weight

    dev = a.detach() - quantize_weight(layer.weight, cfg)
    expected = weight_sigma_formula(cfg.sigma_rel, float(layer.weight.detach().abs().max()), 4, 2)
    assert float(dev.std()) == pytest.approx(expected, rel=0.03)
    x = torch.randn(3, 256, requires_grad=True)
    layer(x).sum().backward()
    assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0


def test_read_noise_is_fresh_per_inference():
    torch.manual_seed(0)
    cfg = CIMConfig(dac_bits=None)
    net = convert(nn.Sequential(nn.Linear(20, 5)), cfg)
    program_model(net, range(2), seed=0)
    x = torch.randn(4, 20).repeat(2, 1)
    assert not torch.equal(net(x), net(x))
    quiet = convert(nn.Sequential(nn.Linear(20, 5)), CIMConfig(dac_bits=None, read_noise=False))
    program_model(quiet, range(2), seed=0)
    assert torch.equal(quiet(x), quiet(x))


def test_state_errors():
    net = convert(_net(), CIMConfig())
    set_mode(net, Mode.CHIPS)
    with pytest.raises(CIMStateError):  # DAC range never calibrated
        net(torch.rand(2, 1, 8, 8))
    calibrate_input_ranges(net, torch.rand(4, 1, 8, 8))
    with pytest.raises(CIMStateError):  # not programmed
        net(torch.rand(2, 1, 8, 8))
    with pytest.raises(CIMConfigError):
        program_model(net, [0], seed=0, verify_masks={"nope": torch.ones(1)})
    with pytest.raises(CIMConfigError):
        convert(nn.Sequential(nn.Conv2d(4, 4, 3, groups=2)), CIMConfig())


def test_program_report_counts_verified_fraction():
    net = convert(_net(), CIMConfig())
    calibrate_input_ranges(net, torch.rand(4, 1, 8, 8))
    names = [n for n, _ in cim_layers(net)]
    full = torch.ones_like(dict(cim_layers(net))[names[0]].weight, dtype=torch.bool)
    report = program_model(net, range(2), seed=0, verify_masks={names[0]: full})
    assert report.weights == 6 * 9 + 96 * 10
    assert report.verified_weights == 54
    assert report.verified_fraction == pytest.approx(54 / report.weights)
