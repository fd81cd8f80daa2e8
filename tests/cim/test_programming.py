"""Programming: chip reproducibility, write-verify statistics and masks, read-back."""

import math

import pytest
import torch

from cim_backend.config import CIMConfig, WriteVerifyConfig
from cim_backend.cost import expected_verify_cost, programming_cost
from cim_backend.devices import RRAM, DeviceModel
from cim_backend.errors import CIMConfigError
from cim_backend.programming import program_tensor, read_back


def _phi(a: float) -> float:
    return math.exp(-a * a / 2) / math.sqrt(2 * math.pi)


def _cdf(a: float) -> float:
    return 0.5 * (1 + math.erf(a / math.sqrt(2)))


def test_chip_is_same_alone_or_in_batch():
    cfg = CIMConfig()
    w = torch.randn(20, 30)
    batch = program_tensor(w, cfg, [0, 1, 2, 3], seed=5)
    alone = program_tensor(w, cfg, [2], seed=5)
    assert torch.equal(batch.g[2], alone.g[0])
    assert not torch.equal(batch.g[0], batch.g[1])  # different chips differ
    again = program_tensor(w, cfg, [0, 1, 2, 3], seed=5)
    assert torch.equal(again.g, batch.g)


def test_write_verify_residual_and_pulses_match_truncated_gaussian():
    sigma, tol = 0.1, 0.05
    device = DeviceModel("t", 2, 1.0, 40.0, sigma_rel=sigma, read_noise_rel=0.0)
    wv = WriteVerifyConfig(tolerance_rel=tol, step_sigma_factor=1.0, max_pulses=200)
    cfg = CIMConfig(device=device, weight_bits=4, read_noise=False, write_verify=wv)
    w = torch.randn(100, 100)
    pt = program_tensor(w, cfg, range(3), seed=1, verify_mask=torch.ones(100, 100, dtype=torch.bool))
    err = pt.g - pt.targets.g
    a = tol / sigma
    p_accept = 2 * _cdf(a) - 1
    expected_std = sigma * math.sqrt(1 - 2 * a * _phi(a) / p_accept)
    assert float(err.abs().max()) <= tol + 1e-6
    assert float(err.std()) == pytest.approx(expected_std, rel=0.03)
    devices = pt.targets.g.numel()
    assert float(pt.pulses.mean()) / devices == pytest.approx(1 / p_accept, rel=0.03)  # geometric


def test_default_tolerance_gives_tenfold_sigma_reduction():
    device = DeviceModel("t", 2, 1.0, 40.0, sigma_rel=0.1, read_noise_rel=0.0)
    cfg = CIMConfig(device=device, weight_bits=4, read_noise=False)
    pt = program_tensor(torch.randn(80, 80), cfg, range(2), seed=2, verify_mask=torch.ones(80, 80, dtype=torch.bool))
    err = pt.g - pt.targets.g
    assert float(err.std()) == pytest.approx(0.01, rel=0.1)


def test_empty_mask_equals_plain_programming():
    cfg = CIMConfig()
    w = torch.randn(30, 30)
    plain = program_tensor(w, cfg, range(2), seed=9)
    empty = program_tensor(w, cfg, range(2), seed=9, verify_mask=torch.zeros(30, 30, dtype=torch.bool))
    assert torch.equal(plain.g, empty.g)
    assert torch.equal(plain.pulses, empty.pulses)
    assert float(empty.verify_reads.sum()) == 0
    assert float(plain.pulses[0]) == plain.targets.g.numel()  # one pulse per device


def test_partial_mask_only_touches_selected_weights():
    cfg = CIMConfig()
    w = torch.randn(40, 40)
    mask = torch.zeros(40, 40, dtype=torch.bool)
    mask[:5] = True
    plain = program_tensor(w, cfg, range(2), seed=4)
    some = program_tensor(w, cfg, range(2), seed=4, verify_mask=mask)
    # untouched devices keep their one-shot state; verified ones end up much closer
    assert torch.equal(some.g[..., 5:, :], plain.g[..., 5:, :])
    err_v = (some.g - some.targets.g)[..., :5, :].std()
    err_p = (plain.g - plain.targets.g)[..., :5, :].std()
    assert float(err_v) < float(err_p) / 4
    assert float(some.pulses.mean()) > float(plain.pulses.mean())
    with pytest.raises(CIMConfigError):
        program_tensor(w, cfg, [0], seed=0, verify_mask=torch.ones(3, 3, dtype=torch.bool))


def test_read_back_is_noisy_around_the_chip():
    cfg = CIMConfig()
    pt = program_tensor(torch.randn(64, 64), cfg, range(2), seed=1)
    diff = read_back(pt, seed=3) - pt.effective()
    expected = float(pt.read_noise_std().flatten()[0])
    assert float(diff.std()) == pytest.approx(expected, rel=0.05)
    torch.testing.assert_close(read_back(pt, seed=3), read_back(pt, seed=3))


def test_programming_cost_accounting():
    cost = programming_cost(1000, 500, RRAM)
    assert cost.time_s == pytest.approx((1000 * 100 + 500 * 10) * 1e-9)
    assert cost.energy_j == pytest.approx((1000 * 10 + 500 * RRAM.read_energy_pj()) * 1e-12)
    cfg = CIMConfig()
    verify = expected_verify_cost(RRAM, cfg, devices=1000)
    assert verify.pulses > 1000  # more than one pulse per verified device
