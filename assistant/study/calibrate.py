"""``run_calibration``: every strategy on this device, on probes built from the person's
notes, through the real serving path (``Assistant.prepare`` + ``stream``); the measured
accuracy and latency per (difficulty, strategy, model) become the router's calibration
table. ``personalize`` calls it at its end; ``assistant calibrate`` runs it alone."""
from __future__ import annotations

import logging
import time
from collections import defaultdict
from typing import Callable, Optional, Sequence

from assistant.errors import AssistantError
from assistant.learn.data import read_chunks
from assistant.models.chat_format import ChatMessage
from assistant.models.generation import SamplingParams
from assistant.profiles import DeviceProfile
from assistant.router.calibration import CalibrationTable, Cell
from assistant.router.plan import Strategy
from assistant.settings import Settings
from assistant.study.paired import mean_ci
from assistant.study.probes import Probe, build_probes, score

log = logging.getLogger(__name__)

PROBES_PER_LEVEL = 10  # the router trusts a cell from calibration.MIN_SAMPLES probes on
ANSWER_TOKENS = {"general": 24, "easy": 24, "moderate": 32, "hard": 96}
NO_CHAT_STRATEGIES = (Strategy.BASE, Strategy.RAG)  # what a model other than the served one is measured with


def open_assistant(settings: Settings, profile: DeviceProfile):
    """A real Assistant on ``profile``; its pool attaches the active adapter."""
    from assistant.models.pool import ModelPool
    from assistant.orchestrator import Assistant

    pool = ModelPool(settings, profile)
    pool.get()
    return Assistant(settings, profile, pool)


def answer(assistant, probe: Probe, strategy: str, model: Optional[str] = None) -> tuple[str, float]:
    """The answer text and the wall time of ``Assistant.answer`` (retrieval included)."""
    from assistant.orchestrator import AskRequest

    started = time.perf_counter()
    request = AskRequest(messages=[ChatMessage("user", probe.question)], strategy=Strategy(strategy), model=model,
                         sampling=SamplingParams(max_tokens=ANSWER_TOKENS[probe.level], temperature=0.0, seed=0))
    text = assistant.answer(request).text
    return text, time.perf_counter() - started


def feasible_strategies(assistant) -> list[str]:
    """The strategies this device can run now (index? adapter?)."""
    resources = assistant.resources(assistant.pool.get())
    strategies = [Strategy.BASE] + ([Strategy.RAG] if resources.has_index else [])
    if resources.adapter_name:
        strategies += [Strategy.ADAPTER] + ([Strategy.RAG_ADAPTER] if resources.has_index else [])
    return strategies


def interleave_levels(probes: Sequence[Probe]) -> list[Probe]:
    """Probes taken one level at a time in turn (general, easy, moderate, hard, general, ...),
    so a run stopped by its time budget leaves every level about equally measured."""
    by_level: dict[str, list[Probe]] = defaultdict(list)
    for probe in probes:
        by_level[probe.level].append(probe)
    queues = list(by_level.values())
    return [queue[i] for i in range(max(map(len, queues), default=0)) for queue in queues if i < len(queue)]


def run_calibration(settings: Settings, profile: DeviceProfile, probes_per_level: int = PROBES_PER_LEVEL,
                    extra_models: Sequence[str] = (), on_progress: Optional[Callable[[dict], None]] = None,
                    save: bool = True, assistant=None, budget_s: Optional[float] = None) -> CalibrationTable:
    """Measure every feasible strategy (and ``base``/``rag`` on each of ``extra_models``,
    e.g. ``gemma3-270m``) on probes from the indexed notes; store and return the table.
    With ``budget_s``, no new probe starts once that many seconds have passed (cells then
    hold fewer samples, and the router ignores those under its minimum). Raises
    NoTrainingDataError when nothing is indexed."""
    started = time.perf_counter()
    assistant = assistant or open_assistant(settings, profile)
    probes = interleave_levels(build_probes(read_chunks(settings), probes_per_level))
    served = assistant.pool.default_name
    runs = [(s, served) for s in feasible_strategies(assistant)]
    runs += [(s, m) for m in extra_models if m != served for s in NO_CHAT_STRATEGIES
             if s == Strategy.BASE or assistant.resources(assistant.pool.get()).has_index]
    results: dict[tuple[str, str, str], list[tuple[float, float]]] = defaultdict(list)
    total, done, stopped = len(probes) * len(runs), 0, "done"
    for probe in probes:
        if budget_s is not None and time.perf_counter() - started >= budget_s:
            stopped = "budget"
            break
        for strategy, model in runs:
            try:
                text, seconds = answer(assistant, probe, strategy, None if model == served else model)
            except AssistantError as exc:  # e.g. the extra model does not fit: measured as absent
                log.warning("calibration: %s on %s failed: %s", strategy, model, exc.message)
                continue
            results[(probe.level, strategy, model)].append((score(probe, text), seconds))
            done += 1
            if on_progress:
                on_progress({"done": done, "total": total, "level": probe.level, "strategy": strategy,
                             "model": model})
    cells = []
    for (level, strategy, model), values in results.items():
        accuracy, low, high = mean_ci([v[0] for v in values])
        cells.append(Cell(level, str(strategy), model, len(values), accuracy, sum(v[1] for v in values) / len(values),
                          (low, high)))
    adapter = assistant.pool.get().adapter
    table = CalibrationTable(model=served, profile=profile.name, cells=cells,
                             notes={"probes_per_level": probes_per_level, "probes": len(probes), "stopped": stopped,
                                    "budget_s": budget_s,
                                    "adapter": adapter.name if adapter else None,
                                    "levels": sorted({p.level for p in probes})})
    if save:
        table.save(settings)
    return table
