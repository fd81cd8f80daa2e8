"""TSB: sharing rule, identity at init, frozen backbone, per-chip calibration and programming."""


import pytest
import torch
from torch import nn

from cim_backend.calibration import CalibrationConfig, calibrate_tsb
from cim_backend.config import CIMConfig
from cim_backend.errors import CIMStateError
from cim_backend.layers import Mode
from cim_backend.network import calibrate_input_ranges, cim_layers, convert, evaluate_chips, program_model
from cim_backend.tsb import TinySharedBlock, TSBSite, insert_tsb


def _net():
    return nn.Sequential(
        nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(6 * 16, 12), nn.ReLU(), nn.Linear(12, 10)
    )


def test_sharing_rule_groups_channels_and_pads_the_last_group():
    block = TinySharedBlock(4, CIMConfig())
    with torch.no_grad():
        block.weight.copy_(torch.randn(4, 4))
        block.bias.copy_(torch.randn(4))
    # digital mode applies the shared weights: check the rule against a hand computation
    a, b = block.weight.detach(), block.bias.detach()
    y = torch.randn(3, 10)  # 10 channels -> groups of 4, 4, 2 (+2 padded)
    out = block(y)
    expected = []
    for start in (0, 4, 8):
        g = y[:, start : start + 4]
        gp = torch.nn.functional.pad(g, (0, 4 - g.shape[1]))
        expected.append((gp + gp @ a.T + b)[:, : g.shape[1]])
    torch.testing.assert_close(out, torch.cat(expected, 1))
    conv_in = torch.randn(2, 8, 3, 3)  # conv features: same map at every pixel
    conv_out = block(conv_in)
    pix = conv_in[:, :, 1, 2]
    torch.testing.assert_close(conv_out[:, :, 1, 2], block(pix))


def test_insert_shares_one_block_and_starts_as_identity():
    torch.manual_seed(0)
    model = convert(_net(), CIMConfig())
    x = torch.rand(5, 1, 8, 8)
    before = model(x)
    block = insert_tsb(model, 4, CIMConfig())
    sites = [m for m in model.modules() if isinstance(m, TSBSite)]
    assert len(sites) == 3 and all(s.block is block for s in sites)
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in _net().parameters()) + 16 + 4
    torch.testing.assert_close(model(x), before)  # zero block = identity
    assert block.crossbar_weights == 16


def _programmed_model(chips):
    torch.manual_seed(0)
    cfg = CIMConfig()
    model = convert(_net(), cfg)
    x, y = torch.rand(64, 1, 8, 8), torch.randint(0, 10, (64,))
    calibrate_input_ranges(model, x)
    program_model(model, range(chips), seed=3)
    return model, cfg, x, y


def test_calibration_leaves_backbone_untouched_and_fits_each_chip():
    model, cfg, x, y = _programmed_model(chips=3)
    weights = [layer.weight.detach().clone() for _, layer in cim_layers(model)]
    biases = [layer.bias.detach().clone() for _, layer in cim_layers(model)]
    programmed = [layer.programmed.g.clone() for _, layer in cim_layers(model)]
    acc_before = evaluate_chips(model, x, y, 3)
    block = insert_tsb(model, 4, cfg)
    res = calibrate_tsb(model, block, x, y, [0, 1, 2], CalibrationConfig(steps=40, lr=0.05, batch_size=64))
    layers = [layer for _, layer in cim_layers(model)]
    assert len(layers) == 3
    for layer, w, b, g in zip(layers, weights, biases, programmed):
        assert torch.equal(layer.weight, w) and torch.equal(layer.bias, b)
        assert torch.equal(layer.programmed.g, g)  # chips not reprogrammed
        assert layer.readback is None and layer.weight.grad is None
    assert torch.equal(block.weight, torch.zeros(4, 4))  # shared seed block untouched too
    assert block.chip_weight.shape == (3, 4, 4)
    assert not torch.equal(block.chip_weight[0], block.chip_weight[1])  # one calibration per chip
    assert block.programmed is not None and bool(block.programmed.verified.all())
    acc_after = evaluate_chips(model, x, y, 3)
    assert float(acc_after.mean()) > float(acc_before.mean())  # it learnt something (on its train data)
    assert res.chips == 3 and res.seconds > 0


def test_block_programming_requires_calibration():
    block = TinySharedBlock(4, CIMConfig())
    with pytest.raises(CIMStateError):
        block.program([0], seed=0)
    block.mode = Mode.CHIPS
    with pytest.raises(CIMStateError):
        block(torch.randn(2, 4))


def test_calibration_requires_programmed_backbone():
    model = convert(_net(), CIMConfig())
    calibrate_input_ranges(model, torch.rand(4, 1, 8, 8))
    block = insert_tsb(model, 4, CIMConfig())
    with pytest.raises(CIMStateError):
        calibrate_tsb(model, block, torch.rand(4, 1, 8, 8), torch.zeros(4, dtype=torch.long), [0], CalibrationConfig(steps=1))


def test_token_features_use_the_last_dimension_as_channels():
    """A transformer's linear layer gives (batch, tokens, channels): the block maps channels per token."""
    torch.manual_seed(0)
    cfg = CIMConfig(read_noise=False)
    model = convert(nn.Sequential(nn.Linear(12, 10)), cfg)
    x = torch.rand(2, 5, 12)  # batch 2, 5 tokens
    calibrate_input_ranges(model, x)
    program_model(model, range(2), seed=0)
    block = insert_tsb(model, 4, cfg)
    calibrate_tsb(model, block, x.reshape(2, 5, 12), torch.zeros(2, dtype=torch.long), [0, 1], CalibrationConfig(steps=0))
    with torch.no_grad():
        block.chip_weight.copy_(torch.randn(2, 4, 4))
    block.program([0, 1], seed=0)
    out = model(x.repeat(2, 1, 1))
    assert out.shape == (4, 5, 10)
    # token t of chip c depends only on token t: permuting tokens permutes the output
    perm = torch.tensor([4, 2, 0, 1, 3])
    torch.testing.assert_close(model(x[:, perm].repeat(2, 1, 1)), out[:, perm], atol=1e-5, rtol=1e-5)
