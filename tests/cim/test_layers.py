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


def test_per_channel_noise_injection_follows_each_rows_scale():
    """With one scale per output row, a row's weight noise is the formula at that row's max."""
    torch.manual_seed(0)
    cfg = CIMConfig(differential=False, read_noise=False, dac_bits=None, per_channel_scales=True)
    layer = CIMLinear(2048, 4, config=cfg)
    with torch.no_grad():
        layer.weight.mul_(torch.tensor([1.0, 4.0, 0.25, 10.0]).view(4, 1))
    layer.mode = Mode.NOISE
    from cim_backend.mapping import quantize_weight

    dev = layer.noisy_weight().detach() - quantize_weight(layer.weight, cfg)
    for row in range(4):
        expected = weight_sigma_formula(cfg.sigma_rel, float(layer.weight[row].detach().abs().max()), 4, 2)
        assert float(dev[row].std()) == pytest.approx(expected, rel=0.08)


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


def _adc_layer(read_noise: bool, adc_bits: int | None = 6):
    torch.manual_seed(0)
    cfg = CIMConfig(tile=TileShape(16, 8), adc_bits=adc_bits, read_noise=read_noise)
    net = convert(nn.Sequential(nn.Linear(40, 7)), cfg)
    x = torch.rand(9, 40)
    calibrate_input_ranges(net, x)
    program_model(net, range(3), seed=5)
    layer = net[0]
    layer.use_crossbar_path = True  # also with adc_bits=None
    return net, layer, x.repeat(3, 1)


def test_crossbar_path_runs_on_the_installed_readback():
    """With a read-back installed, the ADC path sees the chip only through it (no peeking at pt.g)."""
    from cim_backend.crossbar import crossbar_mvm, dac_quantize
    from cim_backend.programming import read_back, read_back_conductances

    net, layer, x = _adc_layer(read_noise=True)
    pt = layer.programmed
    rb = read_back_conductances(pt, seed=9)
    layer.set_readback(rb)
    torch.testing.assert_close(layer.readback, read_back(pt, seed=9))  # same read as the weights' form
    torch.manual_seed(4)
    got = net(x)
    # Hand-built: DAC, then the tiled ADC path on the read-back conductances (+ fresh read noise).
    xq = dac_quantize(x, layer.cim_config.dac_bits, layer.input_range, bool(layer.input_signed))
    torch.manual_seed(4)
    expected = crossbar_mvm(
        xq.reshape(3, 9, 40), rb, pt.targets, layer.cim_config, float(layer.input_range), bool(layer.input_signed)
    ).reshape(27, 7) + layer.bias
    torch.testing.assert_close(got, expected)

    # The true conductances no longer matter while the read-back is installed ...
    _, quiet, xq2 = _adc_layer(read_noise=False)
    quiet.set_readback(read_back_conductances(quiet.programmed, seed=9))
    before = quiet(xq2)
    with torch.no_grad():
        quiet.programmed.g.add_(0.3)  # the chip changes behind the flow's back
    torch.testing.assert_close(quiet(xq2), before)
    quiet.set_readback(None)  # ... and the true chip is back once it is cleared
    assert (quiet(xq2) - before).abs().max() > 0.1


def test_readback_paths_agree_and_bare_weights_are_refused():
    """Ideal ADC: the tiled path on read-back conductances equals the fast path on read-back weights."""
    from cim_backend.programming import read_back_conductances

    net, layer, x = _adc_layer(read_noise=False, adc_bits=None)
    layer.set_readback(read_back_conductances(layer.programmed, seed=2))
    tiled = net(x)
    layer.use_crossbar_path = False
    torch.testing.assert_close(net(x), tiled, atol=1e-5, rtol=1e-5)
    layer.use_crossbar_path = True
    layer.readback = layer.readback + 0.0  # effective weights only: no device values behind them
    with pytest.raises(CIMStateError):
        net(x)
    layer.readback = None
    assert layer.readback_g is None
    with pytest.raises(CIMStateError):
        layer.set_readback(torch.zeros(2, 2))


def test_tsb_calibration_with_an_adc_backpropagates_through_the_tiled_path():
    from cim_backend.calibration import CalibrationConfig, calibrate_tsb
    from cim_backend.config import get_preset
    from cim_backend.tsb import insert_tsb

    torch.manual_seed(0)
    cfg = get_preset("rram-4b-adc")
    model = convert(_net(), cfg)
    x, y = torch.rand(48, 1, 8, 8), torch.randint(0, 10, (48,))
    calibrate_input_ranges(model, x)
    program_model(model, range(2), seed=3)
    layers = [layer for _, layer in cim_layers(model)]
    assert all(not layer.use_fast_path() for layer in layers)
    block = insert_tsb(model, 4, cfg)
    res = calibrate_tsb(model, block, x, y, [0, 1], CalibrationConfig(steps=3, lr=0.05, batch_size=16))
    assert res.final_loss == res.final_loss  # finite, not NaN
    assert block.chip_weight.abs().sum() > 0  # gradients reached the block through the ADC path
    assert all(layer.readback is None and layer.readback_g is None for layer in layers)
    assert evaluate_chips(model, x, y, 2).shape == (2,)
