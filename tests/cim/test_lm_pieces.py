"""The pieces the language-model chip adds to cim_backend: per-layer ADC ranges set on text,
the TSB's exact residual, and distillation that tunes only what it is given."""

import torch
from torch import nn

from cim_backend.adc_calibration import calibrate_adc_ranges, set_adc_ranges
from cim_backend.config import CIMConfig, TileShape
from cim_backend.distill import DistillConfig, distill, mean_kl, teacher_batches
from cim_backend.network import calibrate_input_ranges, cim_layers, convert, program_model
from cim_backend.tsb import insert_tsb


def _heavy_tailed_inputs(n: int = 64, features: int = 48) -> torch.Tensor:
    """Mostly small inputs with one outlier channel hundreds of times larger (as in LMs)."""
    x = torch.randn(n, features) * 0.05
    x[:, 3] = 20.0 * torch.rand(n)
    return x


def _chip(adc_bits, x: torch.Tensor) -> nn.Module:
    torch.manual_seed(0)
    net = convert(nn.Sequential(nn.Linear(48, 12), nn.ReLU(), nn.Linear(12, 5)),
                  CIMConfig(adc_bits=adc_bits, tile=TileShape(16, 16), programming_variation=False,
                            read_noise=False, per_channel_scales=True))
    calibrate_input_ranges(net, x)
    program_model(net, [0], seed=0)
    return net


def test_adc_ranges_set_on_text_read_heavy_tailed_sums_finer():
    x = _heavy_tailed_inputs()
    ideal = _chip(None, x)
    with torch.no_grad():
        reference = ideal(x)
        fixed = _chip(6, x)
        error_fixed = (fixed(x) - reference).abs().mean()
        ranges = calibrate_adc_ranges(fixed, x)
        error_set = (fixed(x) - reference).abs().mean()
    assert set(ranges) == {name for name, _ in cim_layers(fixed)}
    assert all(0 < r < 0.25 for r in ranges.values())  # below the default fraction of the column's current
    assert error_set < 0.5 * error_fixed
    # Stored ranges reproduce the chip exactly.
    again = _chip(6, x)
    set_adc_ranges(again, ranges)
    with torch.no_grad():
        assert torch.equal(again(x), fixed(x))


def test_tsb_site_with_an_exact_residual_is_the_identity_until_trained():
    x = _heavy_tailed_inputs(8)
    net = _chip(None, x)
    with torch.no_grad():
        before = net(x)
    block = insert_tsb(net, 4, net[0].cim_config, exact_residual=True)
    block.start_calibration(1)
    with torch.no_grad():
        # The block's DAC would round the small outputs next to the large ones; the residual does not.
        assert torch.equal(net(x), before)
        block.chip_bias.add_(0.5)
        assert not torch.equal(net(x), before)


def test_distillation_tunes_only_the_given_parameters_and_keeps_the_best():
    torch.manual_seed(0)
    x = _heavy_tailed_inputs(32)
    teacher = nn.Sequential(nn.Linear(48, 12), nn.ReLU(), nn.Linear(12, 5))
    student = convert(teacher, CIMConfig(tile=TileShape(16, 16), per_channel_scales=True).with_sigma(0.2))
    calibrate_input_ranges(student, x)
    program_model(student, [0], seed=0)
    for p in student.parameters():
        p.requires_grad_(False)
    block = insert_tsb(student, 4, student[0].cim_config, exact_residual=True)
    block.start_calibration(1)
    frozen = {k: v.clone() for k, v in student.state_dict().items() if "block" not in k and "input_range" not in k}
    train = teacher_batches(teacher, x[:24], 8)
    val = teacher_batches(teacher, x[24:], 8)
    run = lambda batch: student(batch)  # noqa: E731
    result = distill(run, [block.chip_weight, block.chip_bias], train, val, DistillConfig(lr=0.02, max_steps=30))
    assert result.steps == 30 and result.best_val_kl < result.initial_val_kl
    assert abs(mean_kl(run, val, 0) - result.best_val_kl) < 1e-6  # the best state is the one kept
    after = student.state_dict()
    assert all(torch.equal(after[k], v) for k, v in frozen.items())
