"""Programming: chip reproducibility, write-verify statistics and masks, read-back."""

import math

import pytest
import torch

from torch import nn

from cim_backend.config import CIMConfig, WriteVerifyConfig, ideal_config
from cim_backend.cost import devices_per_chip, expected_verify_cost, programming_cost, readback_cost
from cim_backend.devices import PCM, RRAM, DeviceModel
from cim_backend.errors import CIMConfigError
from cim_backend.mapping import to_device_targets
from cim_backend.network import cim_layers, convert
from cim_backend.programming import (
    chip_generator, draw_stuck_faults, fault_generator, program_tensor, read_back, verify_programmed, write_verify,
)


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
    # The truncated-Gaussian law assumes unbounded landings; clipping (the default) would put
    # the level-0/level-1 devices' mass on the bound, inside the tolerance, in fewer pulses.
    cfg = CIMConfig(device=device, weight_bits=4, read_noise=False, write_verify=wv, clip_conductance=False)
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
    # Unclipped: the sqrt(3) tolerance rule assumes residuals spread over [-tol, tol]; devices
    # clipped onto level 0 or 1 land exactly on target and would shrink the measured std.
    cfg = CIMConfig(device=device, weight_bits=4, read_noise=False, clip_conductance=False)
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


def test_readback_cost_reads_every_device_once():
    cost = readback_cost(5000, RRAM)
    assert cost.pulses == 0 and cost.verify_reads == 5000
    assert cost.time_s == pytest.approx(5000 * RRAM.read_ns * 1e-9)
    assert cost.energy_j == pytest.approx(5000 * RRAM.read_energy_pj() * 1e-12)
    assert readback_cost(0, PCM).energy_j == 0
    with pytest.raises(ValueError):
        readback_cost(-1, RRAM)


def test_devices_per_chip_counts_slices_and_polarities():
    net = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 36, 10))
    weights = 8 * 9 + 8 * 36 * 10  # biases are digital
    assert devices_per_chip(convert(net, CIMConfig())) == weights * 2 * 2  # 4b on 2b devices, pairs
    assert devices_per_chip(convert(net, CIMConfig(differential=False))) == weights * 2
    assert devices_per_chip(convert(net, CIMConfig(device=PCM, weight_bits=8))) == weights * 2 * 2
    assert devices_per_chip(net) == 0  # no CIM layers


# --- conductance clipping ---------------------------------------------------------------


def _old_unclipped_program(w, cfg, chips, seed, layer_key, mask):
    """The programming loop as it was before clipping and faults existed, written out in full."""
    targets = to_device_targets(w, cfg)
    tg = targets.g[0]
    wv = cfg.write_verify
    tol, read_sigma = wv.tolerance(cfg.sigma_rel), cfg.read_sigma_rel
    out = []
    for chip in chips:
        gen = chip_generator(seed, chip, layer_key)
        sigma = cfg.device.variation.level_sigma(tg, cfg.sigma_rel)
        g = tg + sigma * torch.randn(tg.shape, generator=gen)
        active = mask.view(1, 1, *mask.shape).expand_as(g).clone()
        for _ in range(wv.max_pulses):
            read = g + read_sigma * torch.randn(g.shape, generator=gen)
            need = active & ((read - tg).abs() > tol)
            if not bool(need.any()):
                break
            landed = g - (read - tg) + sigma * wv.step_sigma_factor * torch.randn(g.shape, generator=gen)
            g = torch.where(need, landed, g)
            active = need
        out.append(g)
    return torch.stack(out)


def test_clipped_conductances_stay_in_device_range():
    device = DeviceModel("t", 2, 1.0, 40.0, sigma_rel=0.2, read_noise_rel=0.02)
    w = torch.randn(60, 60)
    mask = torch.zeros(60, 60, dtype=torch.bool)
    mask[:20] = True
    clipped = program_tensor(w, CIMConfig(device=device), range(3), seed=2, verify_mask=mask)
    free = program_tensor(w, CIMConfig(device=device, clip_conductance=False), range(3), seed=2, verify_mask=mask)
    assert float(clipped.g.min()) >= 0.0 and float(clipped.g.max()) <= 1.0
    assert float(free.g.min()) < 0.0 and float(free.g.max()) > 1.0  # unclipped really leaves the range
    # Without write-verify the draws are the same, so clipping is exactly a clamp of them.
    unverified = (slice(None), slice(None), slice(None), slice(20, None))
    torch.testing.assert_close(clipped.g[unverified], free.g[unverified].clamp(0, 1), rtol=0, atol=0)


def test_unclipped_programming_is_the_old_model_bit_for_bit():
    cfg = CIMConfig(clip_conductance=False)
    w = torch.randn(30, 40)
    mask = torch.rand(30, 40) < 0.4
    pt = program_tensor(w, cfg, [0, 5, 9], seed=3, layer_key=1, verify_mask=mask)
    assert torch.equal(pt.g, _old_unclipped_program(w, cfg, [0, 5, 9], 3, 1, mask))
    assert pt.stuck is None


def test_ideal_mapping_is_not_clipped():
    cfg = ideal_config()
    assert cfg.clip_conductance and not cfg.clips
    w = 3.0 * torch.randn(10, 10)  # |w| > 1 is stored as is on the ideal pseudo-device
    torch.testing.assert_close(program_tensor(w, cfg, [0], seed=0).effective()[0], w)


# --- stuck-at faults --------------------------------------------------------------------


def test_stuck_rates_are_validated():
    for kwargs in ({"stuck_on_rate": -0.1}, {"stuck_off_rate": 1.5}, {"stuck_on_rate": 0.6, "stuck_off_rate": 0.5}):
        with pytest.raises(CIMConfigError):
            CIMConfig(**kwargs)
    with pytest.raises(CIMConfigError):  # no devices to be stuck without quantized weights
        CIMConfig(weight_bits=None, programming_variation=False, read_noise=False, stuck_on_rate=0.1)
    assert ideal_config(CIMConfig(stuck_on_rate=0.1)).stuck_on_rate == 0.0
    CIMConfig(stuck_on_rate=0.5, stuck_off_rate=0.5)  # every device stuck is allowed


def test_observed_fault_rates_within_binomial_bounds():
    p_on, p_off = 0.01, 0.03
    cfg = CIMConfig(stuck_on_rate=p_on, stuck_off_rate=p_off)
    pt = program_tensor(torch.randn(100, 100), cfg, range(4), seed=8, layer_key=3)
    on = torch.stack([draw_stuck_faults(pt.g.shape[1:], cfg, fault_generator(8, c, 3))[0] for c in range(4)])
    off = torch.stack([draw_stuck_faults(pt.g.shape[1:], cfg, fault_generator(8, c, 3))[1] for c in range(4)])
    assert torch.equal(pt.stuck, on | off) and not bool((on & off).any())
    assert bool((pt.g[on] == 1.0).all()) and bool((pt.g[off] == 0.0).all())
    n = pt.g.numel()
    for mask, p in ((on, p_on), (off, p_off)):
        k = int(mask.sum())
        assert abs(k - n * p) <= 5 * math.sqrt(n * p * (1 - p))  # 5-sigma binomial band


def test_faults_leave_the_other_random_streams_unchanged():
    w = torch.randn(40, 40)
    mask = torch.ones(40, 40, dtype=torch.bool)
    clean = program_tensor(w, CIMConfig(read_noise=False), range(2), seed=6, verify_mask=mask)
    faulty = program_tensor(w, CIMConfig(read_noise=False, stuck_off_rate=0.05), range(2), seed=6, verify_mask=mask)
    free = ~faulty.stuck
    # The fault map has its own generator and the verify loop draws per device and
    # iteration, so every healthy device ends exactly where it did without faults.
    assert torch.equal(faulty.g[free], clean.g[free])
    assert float(faulty.pulses.sum()) > float(clean.pulses.sum())  # stuck devices burn pulses


def test_write_verify_cannot_move_stuck_devices_and_gives_up():
    wv = WriteVerifyConfig(tolerance_rel=0.01, max_pulses=25)
    target = torch.full((1000,), 0.5)
    g = target.clone()
    g[:100] = 1.0  # stuck on, far from its target
    stuck = torch.zeros(1000, dtype=torch.bool)
    stuck[:100] = True
    out, pulses, reads = write_verify(
        g, target, torch.ones(1000, dtype=torch.bool), torch.full((1000,), 0.05), 0.01, 0.0, wv,
        torch.Generator().manual_seed(0), clip=True, stuck=stuck,
    )
    assert bool((out[:100] == 1.0).all())
    assert bool((pulses[:100] == 25).all()) and bool((reads[:100] == 25).all())  # the loop's cap
    assert bool((pulses[100:] == 0).all()) and bool((reads[100:] == 1).all())  # on target: one read


def test_verified_stuck_devices_stay_stuck_and_read_back_sees_them():
    cfg = CIMConfig(stuck_on_rate=0.05, stuck_off_rate=0.05)
    w = torch.randn(50, 50)
    pt = program_tensor(w, cfg, range(2), seed=1, verify_mask=torch.ones(50, 50, dtype=torch.bool))
    on = torch.stack([draw_stuck_faults(pt.g.shape[1:], cfg, fault_generator(1, c, 0))[0] for c in range(2)])
    assert bool((pt.g[on] == 1.0).all()) and bool((pt.g[pt.stuck & ~on] == 0.0).all())
    quiet = program_tensor(w, CIMConfig(stuck_on_rate=0.05, stuck_off_rate=0.05, read_noise=False), range(2), seed=1)
    torch.testing.assert_close(read_back(quiet, seed=0), quiet.effective())  # no read noise: the real state
    diff = read_back(pt, seed=4) - pt.effective()
    assert float(diff.std()) == pytest.approx(float(pt.read_noise_std().flatten()[0]), rel=0.1)


def test_faulty_chip_is_same_alone_or_in_batch():
    cfg = CIMConfig(stuck_on_rate=0.02, stuck_off_rate=0.02)
    w = torch.randn(20, 30)
    mask = torch.rand(20, 30) < 0.5
    batch = program_tensor(w, cfg, [0, 1, 2, 3], seed=5, verify_mask=mask)
    alone = program_tensor(w, cfg, [2], seed=5, verify_mask=mask)
    assert torch.equal(batch.g[2], alone.g[0]) and torch.equal(batch.stuck[2], alone.stuck[0])
    assert torch.equal(batch.pulses[2], alone.pulses[0])
    assert not torch.equal(batch.stuck[0], batch.stuck[1])
    sub = batch.select([2])
    assert sub.chip_ids == (2,) and torch.equal(sub.stuck, alone.stuck)


def test_compact_write_verify_touches_only_the_masked_devices_with_the_same_statistics():
    torch.manual_seed(0)
    cfg = CIMConfig(per_channel_scales=True).with_sigma(0.1)
    w = torch.randn(64, 200)
    mask = torch.zeros_like(w, dtype=torch.bool)
    mask.view(-1)[torch.randperm(w.numel())[:2000]] = True
    full = program_tensor(w, cfg, [0], 3, verify_mask=mask)
    compact = program_tensor(w, cfg, [0], 3, verify_mask=mask, compact_verify=True)
    target = full.targets.g[0]  # (P, S, *shape) like one chip's g
    devices = mask.view(1, 1, *mask.shape).expand_as(target)
    # The one-shot programming is the same draw: unverified devices are identical.
    assert torch.equal(compact.g[0][~devices], full.g[0][~devices])
    err = lambda pt: (pt.g[0] - target)[devices]  # noqa: E731
    assert not torch.equal(err(compact), err(full))  # the loop's draws come in another order...
    assert abs(float(err(compact).std() / err(full).std()) - 1) < 0.15  # ...with the same spread
    unverified = (full.g[0] - target)[~devices].std()
    assert float(err(compact).std()) < 0.5 * float(unverified)
    assert abs(float(compact.pulses[0] / full.pulses[0]) - 1) < 0.02


def test_verifying_a_programmed_chip_equals_programming_it_with_those_weights_verified():
    """Selective write-verify measured on one chip at several budgets verifies the chip already
    programmed: the same conductances, pulses and reads as programming it again with the mask,
    with stuck faults too; a chip that was verified already is refused."""
    cfg = CIMConfig(per_channel_scales=True, stuck_on_rate=0.01).with_sigma(0.1)
    w = torch.randn(32, 80, generator=torch.Generator().manual_seed(1))
    mask = torch.zeros_like(w, dtype=torch.bool)
    mask.view(-1)[torch.randperm(w.numel(), generator=torch.Generator().manual_seed(2))[:500]] = True
    plain = program_tensor(w, cfg, [0, 4], 7, layer_key=5, compact_verify=True)
    later = verify_programmed(plain, mask, seed=7)
    direct = program_tensor(w, cfg, [0, 4], 7, layer_key=5, verify_mask=mask, compact_verify=True)
    assert torch.equal(later.g, direct.g) and not torch.equal(later.g, plain.g)
    assert torch.equal(later.pulses, direct.pulses) and torch.equal(later.verify_reads, direct.verify_reads)
    assert torch.equal(later.verified, direct.verified) and not bool(plain.verified.any())  # plain is untouched
    with pytest.raises(CIMConfigError):
        verify_programmed(direct, mask, seed=7)


def test_verify_selected_changes_only_the_masked_layers_and_restores():
    from cim_backend.network import calibrate_input_ranges, program_model, restore_programmed, verify_selected

    torch.manual_seed(0)
    net = convert(torch.nn.Sequential(torch.nn.Linear(20, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4)),
                  CIMConfig(per_channel_scales=True).with_sigma(0.1))
    x = torch.randn(5, 20)
    calibrate_input_ranges(net, x)
    program_model(net, [0], seed=3, compact_verify=True)
    before = {name: layer.programmed for name, layer in cim_layers(net)}
    previous = verify_selected(net, {"0": torch.ones(16, 20, dtype=torch.bool)}, seed=3)
    assert set(previous) == {"0"} and previous["0"] is before["0"]
    layers = dict(cim_layers(net))
    assert layers["2"].programmed is before["2"] and bool(layers["0"].programmed.verified.all())
    assert float((layers["0"].programmed.effective()[0] - layers["0"].weight).abs().mean()) < \
        float((before["0"].effective()[0] - layers["0"].weight).abs().mean())
    restore_programmed(net, previous)
    assert all(layer.programmed is before[name] for name, layer in cim_layers(net))
    with pytest.raises(CIMConfigError):
        verify_selected(net, {"9": torch.ones(1, dtype=torch.bool)}, seed=3)
    assert net(x).shape == (5, 4)
