"""``assistant learn``: train a LoRA adapter on what is indexed, under a time budget, and
export the best checkpoint as the active GGUF adapter."""
from __future__ import annotations

import argparse
import sys
from typing import Optional

from assistant.commands.common import add_settings_flags, cli_errors, settings_from_args
from assistant.profiles import resolve_profile


class TrainingProgress:
    """A tqdm bar over the budget's seconds, showing loss, tokens/s and the best validation."""

    def __init__(self, budget_s: float, enabled: bool):
        from tqdm import tqdm

        self.bar = tqdm(total=round(budget_s), unit="s", desc="training", disable=not enabled,
                        bar_format="{desc} {bar} {n:.0f}/{total:.0f}s [{remaining} left] {postfix}")

    def __call__(self, event: dict) -> None:
        self.bar.n = min(self.bar.total, round(event["seconds"]))
        postfix = {"step": event["step"], "tok/s": f"{event['tokens_per_s']:.0f}", "best val": f"{event['best']:.3f}"}
        if event.get("train_loss") is not None:
            postfix["loss"] = f"{event['train_loss']:.3f}"
        self.bar.set_postfix(postfix, refresh=True)

    def close(self) -> None:
        self.bar.close()


def add_learn_flags(parser: argparse.ArgumentParser) -> None:
    """Flags shared by ``learn`` and ``personalize --learn``."""
    parser.add_argument("--budget", type=float, default=None,
                        help="training wall-clock seconds (default: the profile's training_budget_s)")
    parser.add_argument("--data-fraction", type=float, default=1.0, help="share of the notes to train on")
    parser.add_argument("--no-activate", action="store_true", help="export but keep the current active adapter")


def run_learning(settings, args, quiet: bool = False) -> int:
    """Train, export and report; shared by ``learn`` and ``personalize --learn adapter``."""
    from assistant.learn.pipeline import learn

    profile = resolve_profile(settings.profile, settings.profiles_dir, settings.system_root)
    budget = args.budget if args.budget is not None else profile.training_budget_s
    progress = TrainingProgress(budget, enabled=not quiet and sys.stderr.isatty())
    try:
        outcome = learn(settings, profile, settings.model, args.budget, args.data_fraction,
                        activate=not args.no_activate, on_progress=progress)
    finally:
        progress.close()
    result = outcome.result
    print(f"adapter {outcome.adapter_path.stem} -> {outcome.adapter_path}")
    print(f"  validation loss {result.initial_val_loss:.3f} -> {result.best_val_loss:.3f} (best at step "
          f"{result.best_step} of {result.steps}; stopped: {result.stopped})")
    print(f"  {result.train_seconds:.1f} s training ({outcome.config.budget_s:.0f} s budget), "
          f"{result.tokens_per_s:.0f} tokens/s, model load {outcome.load_seconds:.1f} s; "
          f"rank {outcome.config.rank}, alpha {outcome.config.alpha}, "
          f"{len(outcome.dataset.train)} train / {len(outcome.dataset.validation)} validation examples")
    return 0


@cli_errors
def main(argv: Optional[list[str]] = None) -> int:
    """Parse flags and train."""
    parser = argparse.ArgumentParser(prog="assistant learn", description=__doc__)
    add_learn_flags(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_settings_flags(parser, ["model", "profile", "home"])
    args = parser.parse_args(argv)
    return run_learning(settings_from_args(args), args, quiet=args.quiet)


if __name__ == "__main__":
    raise SystemExit(main())
