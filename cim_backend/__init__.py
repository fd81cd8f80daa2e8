"""Simulated NVCIM accelerator with write-verify and the Tiny Shared Block."""

from .calibration import CalibrationConfig, calibrate_tsb
from .config import PRESETS, CIMConfig, TileShape, WriteVerifyConfig, get_preset, ideal_config
from .cost import devices_per_chip, readback_cost
from .devices import DEVICE_PRESETS, DeviceModel, NonUniformVariation, UniformVariation, get_device, weight_sigma_formula
from .drift import DriftModel, PowerLawDrift, RelaxationDrift, drifted, drifted_model, get_drift_model
from .errors import CIMConfigError, CIMError, CIMExportError, CIMStateError
from .layers import CIMConv2d, CIMLinear, Mode
from .network import (
    calibrate_input_ranges, cim_layers, convert, evaluate_chips, evaluate_digital, program_model, set_mode, to_digital,
)
from .programming import ProgrammedTensor, program_tensor, read_back
from .tsb import TinySharedBlock, TSBSite, insert_tsb

__all__ = [
    "CIMConfig", "CIMConfigError", "CIMConv2d", "CIMError", "CIMExportError", "CIMLinear", "CIMStateError",
    "CalibrationConfig", "DEVICE_PRESETS", "DeviceModel", "Mode", "NonUniformVariation", "PRESETS", "ProgrammedTensor",
    "TSBSite", "TileShape", "TinySharedBlock", "UniformVariation", "WriteVerifyConfig", "calibrate_input_ranges",
    "calibrate_tsb", "cim_layers", "convert", "evaluate_chips", "evaluate_digital", "get_device", "get_preset",
    "ideal_config", "insert_tsb", "program_model", "program_tensor", "read_back", "set_mode", "to_digital",
    "weight_sigma_formula",
    "DriftModel", "PowerLawDrift", "RelaxationDrift", "devices_per_chip", "drifted", "drifted_model",
    "get_drift_model", "readback_cost",
]
