"""Drift after programming: PCM power law, RRAM relaxation, reproducibility, model swap."""

import math

import pytest
import torch
from torch import nn

from cim_backend.config import CIMConfig, ideal_config
from cim_backend.devices import FEFET, PCM, RRAM, DeviceModel
from cim_backend.drift import (
    FEFET_RETENTION, PCM_DRIFT, RRAM_RELAXATION, PowerLawDrift, drifted, drifted_model, get_drift_model,
)
from cim_backend.errors import CIMConfigError
from cim_backend.network import calibrate_input_ranges, cim_layers, convert, program_model
from cim_backend.programming import program_tensor, read_back_conductances
from cim_backend.tsb import insert_tsb

DAY = 86400.0


def _pcm_cfg(**kwargs) -> CIMConfig:
    return CIMConfig(device=PCM, weight_bits=8, **kwargs)


def test_each_device_finds_its_drift_model():
    assert PCM.drift_model() is PCM_DRIFT
    assert RRAM.drift_model() is RRAM_RELAXATION
    assert FEFET.drift_model() is FEFET_RETENTION
    assert get_drift_model("none").drift(torch.ones(3), RRAM, DAY, torch.Generator()).eq(1).all()
    with pytest.raises(CIMConfigError):
        DeviceModel("t", 2, 1.0, 40.0, 0.1, 0.0).drift_model()
    assert DeviceModel("t", 2, 1.0, 40.0, 0.1, 0.0, drift_name="pcm").drift_model() is PCM_DRIFT


@pytest.mark.parametrize("cfg", [_pcm_cfg(), CIMConfig(), CIMConfig(device=FEFET)])
def test_up_to_t0_nothing_changes(cfg):
    pt = program_tensor(torch.randn(16, 16), cfg, range(2), seed=0)
    t0 = cfg.device.drift_model().t0_s
    for t in (0.0, t0):
        same = drifted(pt, t, seed=1)
        assert torch.equal(same.g, pt.g)
    assert not torch.equal(drifted(pt, 10 * t0 + 1, seed=1).g, pt.g)
    ideal = program_tensor(torch.randn(4, 4), ideal_config(), [0], seed=0)
    assert drifted(ideal, DAY, seed=1) is ideal  # no conductances to drift


def test_pcm_median_decay_follows_the_power_law():
    # Full-scale positive weights: every G+ device at g = 1, where nu ~ N(0.049, 0.008).
    cfg = _pcm_cfg(programming_variation=False, read_noise=False)
    pt = program_tensor(torch.ones(64, 64), cfg, range(4), seed=0)
    top = pt.targets.g.expand_as(pt.g) == 1.0
    ratio = drifted(pt, DAY, seed=2).g[top] / pt.g[top]
    nu_mean = float(PCM_DRIFT.nu_stats(torch.tensor(1.0))[0])
    assert nu_mean == pytest.approx(0.049)
    assert float(ratio.median()) == pytest.approx((DAY / PCM_DRIFT.t0_s) ** -nu_mean, rel=0.01)
    # Low (more amorphous) states drift faster: a 1/15 level has nu_mean = 0.0244 + 0.0155 ln 15.
    low_w = torch.full((64, 64), 1.0)
    low_w[0, 0] = 15.0  # sets the scale: the others sit on level 1 of 15 of the top slice
    low = program_tensor(low_w, cfg, range(4), seed=0)
    level = low.targets.g.expand_as(low.g)
    sel = (level - 1 / 15).abs() < 1e-6
    low_ratio = drifted(low, DAY, seed=2).g[sel] / low.g[sel]
    expected_nu = 0.0244 + 0.0155 * math.log(15)
    assert float(low_ratio.median()) == pytest.approx((DAY / 20.0) ** -expected_nu, rel=0.01)


def test_pcm_drift_is_one_trajectory_per_seed():
    pt = program_tensor(torch.randn(32, 32), _pcm_cfg(), range(3), seed=4)
    hour, day = drifted(pt, 3600.0, seed=9), drifted(pt, DAY, seed=9)
    assert bool((day.g <= hour.g).all()) and bool((hour.g <= pt.g).all())  # monotone decay
    assert torch.equal(drifted(pt, DAY, seed=9).g, day.g)
    assert not torch.equal(drifted(pt, DAY, seed=10).g, day.g)


def test_rram_spread_grows_with_log_time():
    cfg = CIMConfig(clip_conductance=False)
    pt = program_tensor(torch.randn(64, 64), cfg, range(4), seed=1)
    spreads = [float((drifted(pt, t, seed=3).g - pt.g).std()) for t in (60.0, 3600.0, DAY, 365 * DAY)]
    assert spreads == sorted(spreads) and spreads[0] > 0
    for t, s in zip((60.0, 3600.0, DAY, 365 * DAY), spreads):
        assert s == pytest.approx(RRAM_RELAXATION.sigma_per_decade * math.log10(t), rel=0.03)
    assert float((drifted(pt, DAY, seed=3).g - pt.g).mean()) == pytest.approx(0.0, abs=2e-3)  # mean-free


def test_drifted_conductances_are_clipped_when_the_config_clips():
    w = torch.randn(64, 64)
    clipped = drifted(program_tensor(w, CIMConfig(), range(2), seed=1), 3650 * DAY, seed=0)
    assert float(clipped.g.min()) >= 0.0 and float(clipped.g.max()) <= 1.0
    free = drifted(program_tensor(w, CIMConfig(clip_conductance=False), range(2), seed=1), 3650 * DAY, seed=0)
    assert float(free.g.min()) < 0.0


def test_drift_is_per_chip_and_skips_stuck_devices():
    cfg = _pcm_cfg(stuck_on_rate=0.05)
    w = torch.randn(24, 24)
    batch = program_tensor(w, cfg, [0, 1, 2, 3], seed=7, layer_key=2)
    alone = program_tensor(w, cfg, [2], seed=7, layer_key=2)
    torch.testing.assert_close(drifted(batch, DAY, seed=5).g[2], drifted(alone, DAY, seed=5).g[0], rtol=0, atol=0)
    torch.testing.assert_close(drifted(batch.select([2]), DAY, seed=5).g, drifted(alone, DAY, seed=5).g, rtol=0, atol=0)
    d = drifted(batch, DAY, seed=5)
    assert bool((d.g[batch.stuck] == 1.0).all())  # stuck-on devices sit at G_max, drift or not
    assert d.targets is batch.targets and d._effective is None


def test_custom_constant_exponent():
    flat = PowerLawDrift(nu_mean_b=0.0, nu_mean_a=0.1, nu_mean_lo=0.0, nu_std_a=0.0, nu_std_b=0.0, nu_std_lo=0.0)
    pt = program_tensor(torch.ones(8, 8), _pcm_cfg(programming_variation=False, read_noise=False), [0], seed=0)
    top = pt.targets.g.expand_as(pt.g) == 1.0
    d = drifted(pt, 2000.0, seed=0, model=flat)
    torch.testing.assert_close(d.g[top], torch.full_like(d.g[top], 100.0**-0.1))


def _programmed_net(cfg: CIMConfig):
    torch.manual_seed(0)
    net = convert(nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 4)), cfg)
    x = torch.randn(8, 12)
    calibrate_input_ranges(net, x)
    program_model(net, range(3), seed=2)
    block = insert_tsb(net, 4, cfg)
    block.start_calibration(3)
    block.chip_weight.data = 0.1 * torch.randn_like(block.chip_weight)
    block.program([0, 1, 2], seed=2)
    for site in net.modules():
        if hasattr(site, "block"):
            site.input_range.fill_(4.0)  # the block's DAC range (set while calibrating, normally)
    return net, block, x.repeat(3, 1)


def test_drifted_model_swaps_every_programmed_tensor_and_restores():
    net, block, x = _programmed_net(CIMConfig(read_noise=False))
    layers = [layer for _, layer in cim_layers(net)]
    originals = [layer.programmed for layer in layers] + [block.programmed]
    with torch.no_grad():
        before = net(x)
        with drifted_model(net, DAY, seed=1) as same:
            assert same is net
            now = [layer.programmed for layer in layers] + [block.programmed]
            assert all(n is not o and not torch.equal(n.g, o.g) for n, o in zip(now, originals))
            assert all(torch.equal(n.targets.g, o.targets.g) for n, o in zip(now, originals))
            during = net(x)
        after = net(x)
    assert float(before.abs().mean()) > 0.05  # a live network, so a change would show
    assert not torch.allclose(during, before)
    assert all(layer.programmed is o for layer, o in zip(layers, originals))
    assert block.programmed is originals[-1]
    assert torch.equal(after, before)


def test_drifted_model_restores_after_an_error_and_shifts_readbacks():
    net, block, _ = _programmed_net(CIMConfig())
    layer = next(layer for _, layer in cim_layers(net))
    original = layer.programmed
    layer.set_readback(read_back_conductances(original, seed=0))
    readback, readback_g = layer.readback, layer.readback_g
    with pytest.raises(RuntimeError):
        with drifted_model(net, DAY, seed=1):
            # the read-back now stands for the drifted chip, read with the same noise
            torch.testing.assert_close(layer.readback_g, readback_g + (layer.programmed.g - original.g))
            shift = layer.programmed.effective() - original.effective()
            torch.testing.assert_close(layer.readback, readback + shift, atol=1e-6, rtol=1e-5)
            raise RuntimeError("boom")
    assert layer.programmed is original and block.programmed.chips == 3
    assert layer.readback is readback and layer.readback_g is readback_g


def test_drifted_model_handles_any_module_with_a_programmed_tensor():
    holder = nn.Module()  # e.g. a block that keeps effective-weight read-backs only
    holder.programmed = program_tensor(torch.randn(6, 6), CIMConfig(), range(2), seed=0)
    original = holder.programmed
    holder.readback = original.effective().clone()
    readback = holder.readback
    with drifted_model(nn.Sequential(holder), DAY, seed=3):
        shift = holder.programmed.effective() - original.effective()
        torch.testing.assert_close(holder.readback, readback + shift)
    assert holder.programmed is original and holder.readback is readback
