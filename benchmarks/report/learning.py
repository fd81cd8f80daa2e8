"""Learning: training tokens/s, time until the adapter is within 5% of its best, switch time."""
from __future__ import annotations

from pathlib import Path

from benchmarks.report.common import figure, load, load_note, save, table

TITLE = "Learning"
SCRIPT = "benchmarks/bench_adapters.py"


def commands(quick: bool, results: Path) -> list[list[str]]:
    """One run: the validation curve, the adapter switches, the compression x data grid."""
    return [[SCRIPT, "--out", str(results / "adapters.json")] + (["--quick"] if quick else [])]


def plot_curve(data: dict, plots: Path) -> str:
    """Validation loss against wall time, the band within 5% of the best shaded."""
    points = data["curve"]
    best, within = data["best_val_loss"], data["config"]["within"]
    reach, gain = data["time_to_within_5pct"]["within_of_best"], data["time_to_within_5pct"]["of_gain"]
    fig, ax = figure()
    ax.plot([p["seconds"] for p in points], [p["val_loss"] for p in points], marker="o", label="validation loss")
    ax.axhspan(best, best * (1 + within), color="tab:green", alpha=0.2, label=f"within {within:.0%} of best")
    ax.axvline(reach["seconds"], color="tab:green", linestyle="--", label=f"reached at {reach['seconds']:.0f} s")
    ax.axvline(gain["seconds"], color="tab:orange", linestyle=":",
               label=f"{1 - within:.0%} of the gain at {gain['seconds']:.0f} s")
    ax.set_xlim(left=0)
    ax.set_xlabel("wall time since training started (s, validations included)")
    ax.set_ylabel("validation loss (nats/token)")
    ax.set_title("LoRA on the default model, notes eval set")
    ax.legend()
    return save(fig, plots, "learning_val_loss")


def render(results: Path, plots: Path) -> str:
    """The headline numbers, the curve's plot and the compression x data grid."""
    data = load(results / "adapters.json")
    if not data:
        return f"No results: `{SCRIPT}` did not write adapters.json."
    config, reach = data["config"], data["time_to_within_5pct"]
    of_best, of_gain = reach["within_of_best"], reach["of_gain"]
    rows = [
        ["training tokens/s", data["training_tokens_per_s"],
         f"{config['threads']} threads, {data['steps']} steps; "
         f"{data['training_tokens_per_s_with_validation']:.0f}/s counting validations"],
        [f"wall time to within {config['within']:.0%} of best val loss (s)", of_best["seconds"],
         f"step {of_best['step']}; {of_best['train_seconds']:.0f} s of it training"],
        [f"wall time to {1 - config['within']:.0%} of the loss gain (s)", of_gain["seconds"],
         f"step {of_gain['step']}; {of_gain['train_seconds']:.0f} s of it training"],
        ["validation loss: base -> best", f"{data['initial_val_loss']:.3f} -> {data['best_val_loss']:.3f}",
         f"perplexity {data['perplexity_base']:.1f} -> {data['perplexity_adapter']:.1f}; best at "
         f"{data['best_at']['seconds']:.0f} s, step {data['best_at']['step']}"
         + (" (the last validation: still improving)" if data["best_at"]["last"] else "")],
        ["adapter switch, median (ms)", data["switch_ms_median"], f"{len(data['switch_ms'])} switches"],
        ["adapter switch, p95 (ms)", data["switch_ms_p95"], f"max {data['switch_ms_max']:.3g} ms"],
    ]
    lines = [
        f"One LoRA run of {config['curve_budget_s']:.0f} s on the default model (the product's `add_lora` + "
        f"`train_lora`, rank {config['rank']}, batches of {config['batch_size']} x {config['max_tokens']} tokens, "
        f"no early stop), validated {config['evaluations']} times on "
        f"{min(config['validation_subset'], config['validation_examples'])} held-out examples (notes the run "
        f"does not train on) from `{config['notes']}`. "
        f"\"Within {config['within']:.0%} of best\" is the first validation with loss <= best x "
        f"{1 + config['within']:.2f}, best being this run's; its resolution is the validation interval. "
        "Where the whole gain is small next to the loss itself, that holds before any training, so the time "
        f"to {1 - config['within']:.0%} of the gain (initial -> best) is given too. Switch: turning the loaded "
        "adapter on or off in a llama.cpp context (measured inside the engine; the KV cache is dropped)."
        + (" Quick mode: a smoke run with smaller batches, not comparable with a full run." if config["quick"] else ""),
        "",
        table(["measure", "value", "detail"], rows),
        "",
        plot_curve(data, plots),
        "",
        table(["model", "data", "base val loss", "adapter val loss", "gain", "steps"],
              [[row["model"], f"{row['data']:.0%}", row["base_val_loss"], row["adapter_val_loss"],
                row["base_val_loss"] - row["adapter_val_loss"], row["steps"]] for row in data["grid"]]),
        f"\nGrid: compression x data amount, {config['grid_budget_s']:.0f} s per run.",
    ]
    if config.get("load_average_1min"):
        lines.append(f"\nLoad: {load_note(config['load_average_1min'], config.get('cores', 1))}.")
    return "\n".join(lines)
