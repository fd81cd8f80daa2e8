"""Output-referred read noise: the distribution of device-referred noise for each input vector,
drawn on the outputs (fast path) or the column partial sums (tiled path)."""

import pytest
import torch
from torch import nn

from cim_backend.config import CIMConfig, TileShape
from cim_backend.errors import CIMConfigError
from cim_backend.layers import CIMConv2d, CIMLinear
from cim_backend.network import calibrate_input_ranges, convert, program_model


def _config(output_referred: bool, per_channel: bool = True) -> CIMConfig:
    return CIMConfig(dac_bits=None, tile=TileShape(16, 16), programming_variation=False,
                     per_channel_scales=per_channel, output_referred_read_noise=output_referred)


def _output_std(layer_net: nn.Module, x: torch.Tensor, draws: int = 3000) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std over ``draws`` forwards of the same input (one chip)."""
    with torch.no_grad():
        ys = torch.stack([layer_net(x) for _ in range(draws)])
    return ys.mean(0), ys.std(0)


@pytest.mark.parametrize("crossbar_path", [False, True])
def test_linear_output_referred_noise_has_the_device_referred_std(crossbar_path):
    torch.manual_seed(0)
    lin = nn.Linear(40, 6)
    with torch.no_grad():
        lin.weight.mul_(torch.linspace(0.2, 3.0, 6).view(6, 1))  # rows of different scales
    x = torch.randn(2, 40)
    stds, means = {}, {}
    for output_referred in (False, True):
        net = convert(nn.Sequential(lin), _config(output_referred))
        net[0].use_crossbar_path = crossbar_path
        calibrate_input_ranges(net, x)
        program_model(net, [0], seed=0)
        means[output_referred], stds[output_referred] = _output_std(net, x)
        sigma_w = net[0].programmed.read_noise_std().reshape(6)
    expected = sigma_w.view(1, 6) * x.square().sum(-1, keepdim=True).sqrt()
    for output_referred in (False, True):
        torch.testing.assert_close(stds[output_referred], expected, rtol=0.08, atol=0)
    torch.testing.assert_close(means[True], means[False], atol=float(expected.max()) * 0.15, rtol=0)


def test_conv_output_referred_noise_has_the_device_referred_std():
    torch.manual_seed(0)
    conv = nn.Conv2d(2, 3, 3, padding=1)
    x = torch.randn(1, 2, 5, 5)
    stds = {}
    for output_referred in (False, True):
        net = convert(nn.Sequential(conv), _config(output_referred, per_channel=False))
        calibrate_input_ranges(net, x)
        program_model(net, [0], seed=0)
        stds[output_referred] = _output_std(net, x, draws=2000)[1]
        layer = net[0]
    assert isinstance(layer, CIMConv2d)
    sigma_w = float(layer.programmed.read_noise_std().flatten()[0])
    field_sums = torch.nn.functional.conv2d(x.square(), torch.ones(1, 2, 3, 3), padding=1)
    expected = (sigma_w * field_sums.sqrt()).expand_as(stds[True])
    for output_referred in (False, True):
        torch.testing.assert_close(stds[output_referred], expected, rtol=0.1, atol=0)


def test_output_referred_noise_is_fresh_and_off_when_read_noise_is_off():
    torch.manual_seed(0)
    net = convert(nn.Sequential(nn.Linear(20, 5)), _config(True))
    program_model(net, [0], seed=0)
    x = torch.randn(3, 20)
    assert not torch.equal(net(x), net(x))
    quiet = convert(nn.Sequential(nn.Linear(20, 5)), CIMConfig(dac_bits=None, read_noise=False,
                                                                 output_referred_read_noise=True))
    program_model(quiet, [0], seed=0)
    assert torch.equal(quiet(x), quiet(x))


def test_output_referred_noise_needs_differential_pairs():
    with pytest.raises(CIMConfigError, match="differential"):
        CIMConfig(differential=False, output_referred_read_noise=True)
    assert isinstance(CIMLinear(4, 2, config=CIMConfig(output_referred_read_noise=True)), CIMLinear)
