"""``assistant profile``: the device profile in use and what it implies."""
from __future__ import annotations

import argparse
import json
from typing import Optional

from assistant.commands.common import add_settings_flags, cli_errors, settings_from_args
from assistant.errors import AssistantError
from assistant.models.catalog import catalog_entries
from assistant.models.gguf_info import read_gguf_info
from assistant.models.memory import estimate_memory
from assistant.profiles import DeviceProfile, list_profiles, resolve_profile
from assistant.router.calibration import CalibrationTable
from assistant.settings import Settings


def model_fit(settings: Settings, profile: DeviceProfile) -> list[dict]:
    """For each catalog model: memory needed at the profile's context, and whether it fits."""
    rows = []
    for entry in catalog_entries(settings):
        try:
            info = read_gguf_info(entry.path(settings))
        except AssistantError as exc:
            rows.append({"model": entry.name, "available": False, "reason": exc.message})
            continue
        n_ctx = min(profile.max_context, info.context_length)
        estimate = estimate_memory(info, n_ctx)
        rows.append({"model": entry.name, "available": True, "n_ctx": n_ctx,
                     "needs_mb": round(estimate.total_mb), "fits": estimate.total_mb <= profile.ram_budget_mb})
    return rows


def describe(settings: Settings, profile: DeviceProfile) -> dict:
    """The profile plus its implications, JSON-friendly."""
    data = {k: v for k, v in profile.__dict__.items()}
    data["threads_here"] = profile.effective_threads()
    data["models"] = model_fit(settings, profile)
    table = CalibrationTable.load(settings)
    data["calibration"] = table.as_dict() if table else None
    return data


@cli_errors
def main(argv: Optional[list[str]] = None) -> int:
    """Print the profile (detected or named) and which models fit."""
    parser = argparse.ArgumentParser(prog="assistant profile", description=__doc__)
    parser.add_argument("--list", action="store_true", help="list profile names")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    add_settings_flags(parser, ["profile", "home", "system_root"])
    args = parser.parse_args(argv)
    settings = settings_from_args(args)
    if args.list:
        print("\n".join(["auto"] + list_profiles(settings.profiles_dir)))
        return 0
    profile = resolve_profile(settings.profile, settings.profiles_dir, settings.system_root)
    data = describe(settings, profile)
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    print(f"profile      {profile.name}" + (f"  (detected: {profile.detected_from})" if profile.detected_from else ""))
    print(f"             {profile.description}")
    print(f"RAM          {profile.ram_mb} MB, budget {profile.ram_budget_mb} MB for the assistant")
    print(f"CPU          {profile.cores} cores ({profile.arch}); {data['threads_here']} inference threads here")
    print(f"context      up to {profile.max_context} tokens")
    training = f"allowed, default budget {profile.training_budget_s} s" if profile.training_allowed else "not allowed"
    print(f"training     {training}; LoRA rank {profile.lora_rank}, alpha {profile.lora_alpha}")
    print(f"RAG          {profile.rag_passages} passages of up to {profile.rag_passage_tokens} tokens")
    print("models")
    for row in data["models"]:
        if not row["available"]:
            print(f"  {row['model']:<24} not available: {row['reason']}")
        else:
            verdict = "fits" if row["fits"] else "too large"
            print(f"  {row['model']:<24} ~{row['needs_mb']} MB at context {row['n_ctx']}: {verdict}")
    table = CalibrationTable.load(settings)
    if table is None:
        print("calibration  none yet (assistant calibrate, or personalize): the router uses its defaults")
    else:
        from assistant.commands.calibrate import print_table

        print(f"calibration  {table.model} on {table.profile}, cells with n >= {table.min_samples} "
              "override the defaults")
        print_table(table.rows())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
