"""The TSB study's parts: cross-fitting folds, bootstrap intervals, per-chip fitting flows."""

import numpy as np
import pytest
import torch
from torch import nn

from cim_backend import chip_tuning as ct
from cim_backend import stats
from cim_backend.config import CIMConfig
from cim_backend.folds import cross_fit_folds
from cim_backend.models import build_network, vgg_digits, weight_count
from cim_backend.errors import CIMConfigError
from cim_backend.layers import Mode
from cim_backend.network import calibrate_input_ranges, cim_layers, convert, program_model
from cim_backend.tsb_results import swv_crossing


def _ids(x: torch.Tensor) -> set[bytes]:
    return {row.numpy().tobytes() for row in x.reshape(x.shape[0], -1)}


def test_folds_test_every_image_once_and_keep_validation_apart():
    folds = cross_fit_folds(5)
    assert len(folds) == 5
    tested = sum(f.final.x_test.shape[0] for f in folds)
    assert tested == 1797
    all_test = torch.cat([f.final.x_test for f in folds])
    assert len(_ids(all_test)) == len(_ids(torch.cat([f.final.x_train for f in folds[:1]] + [f.final.x_test for f in folds[:1]] + [f.tune.x_test for f in folds[:1]])))
    for f in folds:
        train, val, test = _ids(f.final.x_train), _ids(f.tune.x_test), _ids(f.final.x_test)
        # the digits hold a few duplicate images; ids are pixel contents, so allow that handful
        assert len(train & test) <= 3 and len(val & test) <= 3 and len(train & val) <= 3
        assert torch.equal(f.tune.x_train, f.final.x_train)  # choices and final fits train on the same data
        counts = torch.bincount(f.final.y_test, minlength=10)
        assert int(counts.min()) >= 34  # stratified: ~36 per class
    assert len({f.chip_seed for f in folds}) == 5


def test_vgg_has_six_convolutions_of_16_to_64_channels():
    net = vgg_digits()
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 6 and {c.out_channels for c in convs} == {16, 32, 64}
    assert net(torch.rand(2, 1, 8, 8)).shape == (2, 10)
    assert weight_count(net) == 72_208
    with pytest.raises(CIMConfigError):
        build_network("resnet")


def test_bootstrap_without_resampling_is_the_point_estimate():
    rng = np.random.default_rng(0)
    correct = [rng.random((4, 50)) < 0.8, rng.random((4, 40)) < 0.6]
    ones = stats.Draws([np.ones((1, 4), np.float32)] * 2, [np.ones((1, 50), np.float32), np.ones((1, 40), np.float32)])
    assert stats.replicate_accuracy(correct, ones)[0] == pytest.approx(stats.point_accuracy(correct), abs=1e-6)
    ref = [np.ones(50, bool), np.zeros(40, bool)]
    assert stats.replicate_reference(ref, ones)[0] == pytest.approx(50 / 90)


def test_bootstrap_interval_covers_and_ties_are_detected():
    rng = np.random.default_rng(1)
    a = [rng.random((10, 300)) < 0.9 for _ in range(3)]
    b = [rng.random((10, 300)) < 0.9 for _ in range(3)]  # same rate, independent draws: a tie
    draws = stats.draw([10] * 3, [300] * 3, 1000, seed=2)
    sa, sb = stats.replicate_accuracy(a, draws), stats.replicate_accuracy(b, draws)
    lo, hi = stats.interval(sa)
    assert lo < stats.point_accuracy(a) < hi and hi - lo < 0.05
    assert stats.is_tie(sa - sb)
    worse = [np.zeros_like(m) for m in a]
    assert not stats.is_tie(sa - stats.replicate_accuracy(worse, draws))


def test_ratio_interval_is_unbounded_when_the_smaller_gap_can_vanish():
    lo, hi = stats.ratio_interval(np.full(100, 0.1), np.array([0.05] * 95 + [0.0] * 5))  # 5% of replicates: no gap
    assert lo == pytest.approx(2.0) and hi == np.inf
    lo, hi = stats.ratio_interval(np.full(100, 0.1), np.full(100, 0.02))
    assert lo == pytest.approx(5.0) and hi == pytest.approx(5.0)


def test_crossing_interpolates_on_a_log_scale():
    methods = {"swv@1x": {"verified_weights": 100, "accuracy": 0.90}, "swv@10x": {"verified_weights": 1000, "accuracy": 0.94}}
    c = swv_crossing(methods, 0.92, 100)
    assert c["status"] == "crosses" and c["weights"] == pytest.approx(10**2.5)
    assert swv_crossing(methods, 0.99, 100)["status"].startswith("never")
    assert swv_crossing(methods, 0.80, 100)["status"].startswith("at or above")


def _programmed(chips: int):
    torch.manual_seed(0)
    cfg = CIMConfig()
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(256, 10))
    model = convert(net, cfg)
    x, y = torch.rand(64, 1, 8, 8), torch.randint(0, 10, (64,))
    calibrate_input_ranges(model, x)
    program_model(model, range(chips), seed=3)
    return model, cfg, x, y


def test_chip_bias_fit_gives_each_chip_its_own_offsets_and_freezes_the_rest():
    model, _, x, y = _programmed(3)
    weights = [layer.weight.detach().clone() for _, layer in cim_layers(model)]
    offsets = ct.insert_chip_biases(model, 3)
    assert len(offsets) == 2 and offsets[0].shape == (3, 4)
    res = ct.fit_per_chip(model, offsets, x, y, 3, ct.FitConfig(checkpoints=(5, 20), lr=0.05, batch_size=32))
    assert set(res.snapshots) == {5, 20}
    assert not torch.equal(offsets[1][0], offsets[1][1])  # per chip
    for (_, layer), w in zip(cim_layers(model), weights):
        assert torch.equal(layer.weight, w) and layer.readback is None
    # the offset is what reaches the output: chip 0's logits move by exactly its offset
    out = model(x[:2].repeat(3, 1, 1, 1))
    with torch.no_grad():
        offsets[1][0] += 1.0
    moved = model(x[:2].repeat(3, 1, 1, 1))
    # read noise is fresh per forward: compare against the shift, not bit for bit
    assert float((moved[:2] - out[:2]).mean().detach()) == pytest.approx(1.0, abs=0.2)


def test_last_layer_refit_reprograms_per_chip_weights_without_verify():
    model, _, x, y = _programmed(2)
    layer = ct.insert_chip_last_layer(model, 2)
    ct.fit_per_chip(model, [layer.weight], x, y, 2, ct.FitConfig(checkpoints=(10,), lr=0.05, batch_size=32))
    pulses, reads = layer.program([0, 1], seed=3)
    pt = layer.layer.programmed
    assert pt.g.shape[0] == 2 and reads == 0 and pulses == pt.g[0].numel()
    assert not bool(pt.verified.any())
    assert not torch.equal(pt.targets.g[0], pt.targets.g[1])  # each chip got its own weights
    assert layer(torch.rand(4, 256)).shape == (4, 10)


def test_one_shared_block_is_the_same_on_every_chip():
    model, cfg, x, y = _programmed(2)
    block = ct.add_tsb(model, 4, cfg, 1)
    ct.fit_per_chip(model, ct.tsb_parameters(block, False), x, y, 2, ct.FitConfig(checkpoints=(10,), lr=0.05, batch_size=32))
    program_model(model, range(3), seed=4)
    ct.program_shared_block(block, [0, 1, 2], seed=4)
    targets = block.programmed.targets.g
    assert targets.shape[0] == 3 and torch.equal(targets[0], targets[2])
    assert block.mode == Mode.CHIPS and bool(block.programmed.verified.all())


def test_bias_only_tsb_keeps_a_at_zero():
    model, cfg, x, y = _programmed(2)
    block = ct.add_tsb(model, 4, cfg, 2)
    params = ct.tsb_parameters(block, bias_only=True)
    ct.fit_per_chip(model, params, x, y, 2, ct.FitConfig(checkpoints=(10,), lr=0.05, batch_size=32))
    assert torch.count_nonzero(block.chip_weight) == 0 and torch.count_nonzero(block.chip_bias) > 0


def test_ideal_adc_is_restored():
    model, _, _, _ = _programmed(1)
    for _, layer in cim_layers(model):
        layer.cim_config = CIMConfig(adc_bits=6)
    with ct.ideal_adc(model):
        assert all(layer.cim_config.adc_bits is None for _, layer in cim_layers(model))
    assert all(layer.cim_config.adc_bits == 6 for _, layer in cim_layers(model))
