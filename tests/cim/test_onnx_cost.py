"""ONNX export of a programmed chip equals the torch simulation; inference cost model."""

import pytest
import torch
from torch import nn

from cim_backend.calibration import CalibrationConfig, calibrate_tsb
from cim_backend.config import CIMConfig, TileShape
from cim_backend.cost import PeripheryConstants, inference_cost, mvm_cost
from cim_backend.errors import CIMExportError
from cim_backend.network import calibrate_input_ranges, cim_layers, convert, program_model
from cim_backend.onnx_export import export_chip, freeze_chip, run_onnx
from cim_backend.tsb import insert_tsb

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


def _net():
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 16, 10)
    )


@pytest.mark.parametrize("with_tsb", [False, True])
def test_onnx_export_equals_torch_chip(tmp_path, with_tsb):
    torch.manual_seed(0)
    cfg = CIMConfig(read_noise=False)  # the graph is deterministic: compare without read noise
    model = convert(_net(), cfg)
    x, y = torch.rand(48, 1, 8, 8), torch.randint(0, 10, (48,))
    calibrate_input_ranges(model, x)
    program_model(model, range(3), seed=4)
    if with_tsb:
        block = insert_tsb(model, 4, cfg)
        calibrate_tsb(model, block, x, y, [0, 1, 2], CalibrationConfig(steps=10, lr=0.05, batch_size=48))
    with torch.no_grad():
        torch_logits = model(x.repeat(3, 1, 1, 1)).reshape(3, 48, 10)[1]
    path = export_chip(model, 1, tmp_path / "chip1.onnx", x[:2])
    onnx_logits = torch.from_numpy(run_onnx(path, x))
    torch.testing.assert_close(onnx_logits, torch_logits, atol=1e-4, rtol=1e-4)
    assert torch.equal(onnx_logits.argmax(-1), torch_logits.argmax(-1))
    with torch.no_grad():
        other = freeze_chip(model, 0)(x)
    assert (other - torch_logits).abs().max() > 1e-3  # a different chip really is different


def test_export_refuses_unprogrammed_or_adc_models(tmp_path):
    model = convert(_net(), CIMConfig())
    calibrate_input_ranges(model, torch.rand(4, 1, 8, 8))
    with pytest.raises(CIMExportError):
        export_chip(model, 0, tmp_path / "x.onnx", torch.rand(1, 1, 8, 8))
    adc = convert(_net(), CIMConfig(adc_bits=6))
    calibrate_input_ranges(adc, torch.rand(4, 1, 8, 8))
    program_model(adc, [0], seed=0)
    with pytest.raises(CIMExportError):
        freeze_chip(adc, 0)


def test_mvm_cost_counts_tiles_and_conversions():
    cfg = CIMConfig(tile=TileShape(128, 128))  # 4-bit weights on 2-bit devices: 2 slices x 2 polarities
    layer = convert(nn.Sequential(nn.Linear(300, 200)), cfg)[0]
    cost = mvm_cost(layer)
    assert cost.arrays == 3 * 2 * 4  # ceil(300/128) x ceil(200/128) tiles, 4 device copies
    assert cost.adc_conversions == 3 * 200 * 4
    assert cost.cell_reads == 300 * 200 * 4
    cheap = mvm_cost(layer, PeripheryConstants(adc_fom_fj_per_step=1.0))
    assert cheap.energy_pj < cost.energy_pj


def test_inference_cost_counts_conv_pixels():
    model = convert(_net(), CIMConfig())
    totals = inference_cost(model, torch.rand(1, 1, 8, 8))
    assert totals["mvms"] == 64 + 1  # one MVM per conv output pixel, one for the FC layer
    layers = [layer for _, layer in cim_layers(model)]
    expected = 64 * mvm_cost(layers[0]).adc_conversions + mvm_cost(layers[1]).adc_conversions
    assert totals["adc_conversions"] == expected
