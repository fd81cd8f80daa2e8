"""Cost-model energy and latency of one token through the served model's chip projections,
with and without the Tiny Shared Block, against the CPU estimate (``cim_backend.cost.token_cost``).

    .venv/bin/python benchmarks/cim/bench_token_cost.py [--adc-bits 6 8]

Prints one line per ADC setting; nothing is programmed (the cost depends on shapes and bits).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from assistant.models.cim_tsb import DEFAULT_WIDTH  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Print uJ and us per token for each ``--adc-bits``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--adc-bits", type=int, nargs="+", default=[6, 8])
    parser.add_argument("--width", type=int, default=DEFAULT_WIDTH, help=f"TSB width (default {DEFAULT_WIDTH})")
    args = parser.parse_args(argv)

    from cim_backend.cost import token_cost
    from cim_backend.network import cim_layers, convert

    from assistant.models.catalog import resolve_model
    from assistant.models.cim_chip import ChipSpec
    from assistant.models.cim_engine import is_projection
    from assistant.models.hf_model import load_hf_model
    from assistant.settings import Settings

    resolved = resolve_model("default", Settings())
    model, _ = load_hf_model(resolved.path, 1)
    bits = 8 * resolved.info.file_size_bytes / resolved.info.parameter_count
    for adc in args.adc_bits:
        net = convert(model, ChipSpec(model=resolved.name, model_sha256="", adc_bits=adc).cim_config(),
                      include=is_projection)
        sites = {name: (layer.out_features, args.width) for name, layer in cim_layers(net)}
        plain, tsb = token_cost(net, None, bits), token_cost(net, sites, bits)
        print(f"{adc}-bit ADC: chip {plain.energy_pj * 1e-6:.2f} uJ, {plain.latency_ns * 1e-3:.2f} us, "
              f"{plain.macs / 1e6:.1f}M MACs; with TSB {tsb.energy_pj * 1e-6:.2f} uJ, {tsb.latency_ns * 1e-3:.2f} us, "
              f"{tsb.macs / 1e6:.1f}M MACs; CPU estimate {plain.cpu_energy_pj * 1e-6:,.0f} uJ ({bits:.2f} bits/weight)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
