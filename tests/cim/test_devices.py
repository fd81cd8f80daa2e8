"""Device variation: measured deviation std against the closed-form model."""

import math

import pytest
import torch

from cim_backend.config import CIMConfig, TileShape, ideal_config
from cim_backend.devices import RRAM, DeviceModel, NonUniformVariation, get_device, weight_sigma_formula
from cim_backend.errors import CIMConfigError
from cim_backend.programming import program_tensor


def _measured_weight_std(cfg: CIMConfig, chips: int = 40) -> tuple[float, float]:
    w = torch.randn(64, 64)
    pt = program_tensor(w, cfg, range(chips), seed=7)
    ideal = program_tensor(w, cfg.with_sigma(0.0), range(1), seed=7).effective()
    dev = pt.effective() - ideal
    return float(dev.std()), float(w.abs().max())


@pytest.mark.parametrize("weight_bits,bits_per_device", [(4, 2), (8, 2), (8, 4), (4, 1), (6, 3)])
def test_weight_std_matches_formula_sign_bit(weight_bits, bits_per_device):
    device = DeviceModel("t", bits_per_device, 1.0, 40.0, sigma_rel=0.1, read_noise_rel=0.0)
    # The closed form assumes unbounded Gaussian device errors; clipping to the device range
    # (the default) truncates the errors of the extreme levels, so compare the model unclipped.
    cfg = CIMConfig(
        device=device, weight_bits=weight_bits, differential=False, read_noise=False, clip_conductance=False
    )
    measured, w_max = _measured_weight_std(cfg)
    expected = weight_sigma_formula(0.1, w_max, weight_bits, bits_per_device)
    assert measured == pytest.approx(expected, rel=0.03)


def test_differential_pair_doubles_variance():
    # Unclipped: the formula's Gaussian errors are unbounded, and half the devices of a
    # differential pair sit at level 0, where clipping would cut their errors in half.
    cfg = CIMConfig(device=RRAM, weight_bits=4, differential=True, read_noise=False, clip_conductance=False)
    measured, w_max = _measured_weight_std(cfg)
    expected = math.sqrt(2) * weight_sigma_formula(RRAM.sigma_rel, w_max, 4, 2)
    assert measured == pytest.approx(expected, rel=0.03)


def test_formula_values_by_hand():
    # 4-bit weight on two 2-bit devices: sqrt(1 + 16) / (1 + 4)
    assert weight_sigma_formula(0.1, 2.0, 4, 2) == pytest.approx(0.1 * 2.0 * math.sqrt(17) / 5)
    # one device holding all bits: the weight inherits the device's sigma (times w_max)
    assert weight_sigma_formula(0.1, 1.0, 4, 4) == pytest.approx(0.1)
    with pytest.raises(CIMConfigError):
        weight_sigma_formula(0.1, 1.0, 5, 2)


def test_nonuniform_mid_levels_noisier():
    var = NonUniformVariation(mid_gain=3.0)
    levels = torch.tensor([0.0, 1 / 3, 2 / 3, 1.0])
    sig = var.level_sigma(levels, 0.1)
    assert sig[0] == pytest.approx(0.1) and sig[3] == pytest.approx(0.1)
    assert sig[1] == pytest.approx(0.1 * (1 + 2 * 8 / 9))
    device = DeviceModel("t", 2, 1.0, 40.0, sigma_rel=0.1, read_noise_rel=0.0, variation=var)
    # Unclipped: the levels 0 and 1 would otherwise have half-normal errors, not sigma.
    cfg = CIMConfig(device=device, weight_bits=2, differential=False, read_noise=False, clip_conductance=False)
    w = torch.linspace(-1, 1, 4097)
    pt = program_tensor(w, cfg, range(30), seed=3)
    err = (pt.g - pt.targets.g)[:, 0, 0]  # (chips, weights): one device per weight
    target = pt.targets.g[0, 0, 0]
    for level, expected in zip(levels, sig):
        sel = (target - level).abs() < 1e-6
        assert float(err[:, sel].std()) == pytest.approx(float(expected), rel=0.05)


def test_config_validation():
    with pytest.raises(CIMConfigError):
        CIMConfig(device=RRAM, weight_bits=5)
    with pytest.raises(CIMConfigError):
        CIMConfig(weight_bits=None)  # noise on but nothing to slice
    with pytest.raises(CIMConfigError):
        CIMConfig(adc_range=0.0)
    with pytest.raises(CIMConfigError):
        TileShape(0, 128)
    with pytest.raises(CIMConfigError):
        get_device("sram")
    with pytest.raises(CIMConfigError):
        DeviceModel("bad", 2, 10.0, 1.0, 0.1, 0.0)
    assert ideal_config().weight_bits is None


def test_read_energy_is_physical():
    # V^2 * G * t at mid-range: 0.04 V^2 * 20.5 uS * 10 ns = 8.2 fJ
    assert RRAM.read_energy_pj() == pytest.approx(0.2**2 * 20.5e-6 * 10e-9 * 1e12)
