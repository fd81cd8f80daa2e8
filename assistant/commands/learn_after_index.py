"""The end of ``personalize``: decide whether to train an adapter (``--learn``), train it,
then recalibrate the router on this device."""
from __future__ import annotations

import argparse

from assistant.learn.data import read_chunks
from assistant.profiles import DeviceProfile, resolve_profile
from assistant.settings import Settings

# Fewer notes than this teach an adapter little that retrieval does not already give.
MIN_CHUNKS_FOR_ADAPTER = 20
MIN_DOCUMENTS_FOR_ADAPTER = 3


def should_train(choice: str, profile: DeviceProfile, settings: Settings) -> tuple[bool, str]:
    """(train?, why) for ``--learn`` = rag | adapter | auto."""
    if choice == "rag":
        return False, "--learn rag: retrieval only"
    if choice == "adapter":
        return True, "--learn adapter"
    if not profile.training_allowed:
        return False, f"auto: profile '{profile.name}' does not allow training; retrieval only"
    chunks = read_chunks(settings)
    documents = len({c.path for c in chunks})
    if len(chunks) < MIN_CHUNKS_FOR_ADAPTER or documents < MIN_DOCUMENTS_FOR_ADAPTER:
        return False, (f"auto: {len(chunks)} chunks in {documents} notes are too few for an adapter "
                       f"(need {MIN_CHUNKS_FOR_ADAPTER} and {MIN_DOCUMENTS_FOR_ADAPTER}); retrieval only")
    return True, f"auto: profile '{profile.name}' allows training and {len(chunks)} chunks are indexed"


def learn_and_calibrate(settings: Settings, args: argparse.Namespace, quiet: bool = False) -> None:
    """Train when ``--learn`` says so (refusals are errors only for an explicit 'adapter'),
    then run the router's calibration."""
    from assistant.commands.learn import run_learning
    from assistant.study.calibrate import run_calibration

    profile = resolve_profile(settings.profile, settings.profiles_dir, settings.system_root)
    train, why = should_train(args.learn, profile, settings)
    print(f"learn: {why}", flush=True)
    if train:
        run_learning(settings, args, quiet=quiet)
    table = run_calibration(settings, profile, budget_s=args.calibration_budget)
    print(f"router calibrated: {len(table.cells)} cells{table.cut_short} (see 'assistant profile')", flush=True)
