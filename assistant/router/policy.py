"""Turns a request's difficulty, the device profile and what exists (index, adapter,
catalog models, calibration) into a Plan.

Defaults: ``general`` -> the base model; ``easy``, ``moderate`` and ``hard`` -> RAG with
the strongest chat model that fits the RAM budget (few, short passages on a tight device,
3 for one fact), the adapter only when nothing is indexed. The edge-deployment guidelines
(DESIGN.md) send easy requests to the adapter; on the evaluation set's dev split the adapter
lost wherever it was added, so here it has to win its place through calibration. A
calibration table measured on this device overrides the defaults where a cell has enough
samples and its 95% interval lies wholly above the interval of the default's own cell; a
request's explicit strategy (or model) overrides both."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

from assistant.errors import InvalidRequestError
from assistant.profiles import DeviceProfile
from assistant.router.calibration import CalibrationTable, Cell
from assistant.router.difficulty import Difficulty
from assistant.router.model_choice import ModelOption, find_option, strongest_chat_model
from assistant.router.plan import BACKENDS, STRATEGIES, Backend, Plan, Strategy

TIGHT_RAM_BUDGET_MB = 2000  # below this, RAG gets at most MODERATE_PASSAGES
MODERATE_PASSAGES = 3  # one fact needs few passages: the guidelines' "limited history"


@dataclass(frozen=True)
class Resources:
    """What this device has right now that a plan may use."""

    has_index: bool
    adapter_name: Optional[str]
    adapter_error: Optional[str] = None  # why the active adapter could not be used
    adapter_model: Optional[str] = None  # the model the adapter is loaded on (None: the served one)


def is_tight(profile: DeviceProfile) -> bool:
    """A device where training is not allowed or the RAM budget is small (a 2 GB Pi)."""
    return not profile.training_allowed or profile.ram_budget_mb < TIGHT_RAM_BUDGET_MB


def _check(requested_strategy: str, backend: str) -> None:
    if requested_strategy not in STRATEGIES:
        raise InvalidRequestError(f"strategy must be one of {', '.join(STRATEGIES)}", param="strategy")
    if backend not in BACKENDS:
        raise InvalidRequestError(f"backend must be one of {', '.join(BACKENDS)}", param="backend")


def _require(strategy: Strategy, resources: Resources) -> None:
    """Typed errors for a strategy that lacks what it needs (explicit requests only)."""
    if strategy.retrieves and not resources.has_index:
        raise InvalidRequestError("strategy 'rag' needs indexed notes: run 'assistant personalize PATH' first",
                                  param="strategy", code="no_index")
    if strategy.uses_adapter and not resources.adapter_name:
        why = resources.adapter_error or "no adapter is trained for this model: run 'assistant learn' first"
        raise InvalidRequestError(f"strategy '{strategy}' needs an adapter: {why}", param="strategy",
                                  code="no_adapter")


def _default_strategy(level: str, resources: Resources, adapter_here: bool) -> tuple[Strategy, str]:
    """(strategy, reason) by default, given what exists. Retrieval wherever the notes are
    needed and indexed: on the evaluation set's dev split (SmolLM2-135M, a 180 s adapter)
    retrieval was the most accurate fixed strategy at the easy, moderate and hard levels and
    the adapter lowered accuracy wherever it was added, so the adapter is the default only
    where there is nothing to retrieve from; calibration brings it in where it measurably
    wins on this device."""
    index, adapter = resources.has_index, adapter_here
    if level == "unknown":
        return (Strategy.RAG, "notes are indexed, retrieving") if index else (Strategy.BASE, "no notes indexed")
    if level == "general":
        return Strategy.BASE, "general request: no personal data needed, base model"
    if index:
        what = "the note's title, folder and category come with its passages" if level == "easy" else \
            "retrieval with the strongest model that fits"
        return Strategy.RAG, f"{level} request: {what} (retrieval measured best at this level)"
    if adapter:
        return Strategy.ADAPTER, f"{level} request, no notes indexed: the adapter is all there is"
    return Strategy.BASE, f"{level} request, but no notes indexed and no adapter"


def decide(requested_strategy: str, backend: str, model_name: str, profile: DeviceProfile,
           resources: Resources, difficulty: Optional[Difficulty] = None,
           calibration: Optional[CalibrationTable] = None, models: Sequence[ModelOption] = (),
           model_explicit: bool = False) -> Plan:
    """The plan for one request. ``model_name`` is the requested (or served) model; with
    ``model_explicit`` it is kept, otherwise the router may switch to a stronger one.
    Every choice is written into ``reasons``."""
    _check(requested_strategy, backend)
    level = difficulty.level if difficulty else "unknown"
    reasons = list(difficulty.reasons) if difficulty else []
    reasons = [f"difficulty {level}: {'; '.join(reasons)}"] if reasons else []
    adapter_model = resources.adapter_model or model_name
    model, source = model_name, "defaults"
    if requested_strategy != Strategy.AUTO:
        strategy, source = Strategy(requested_strategy), "request"
        reasons.append(f"strategy '{strategy}' requested")
        _require(strategy, resources)
    else:
        if level in ("moderate", "hard") and resources.has_index and not model_explicit and models:
            model, why = strongest_chat_model(models, model_name, profile.ram_budget_mb)
            reasons += why
        strategy, why = _default_strategy(level, resources, bool(resources.adapter_name) and adapter_model == model)
        cell = _calibrated(calibration, level, model_name, profile, resources, models, model_explicit)
        default_cell = calibration.cell(level, str(strategy), model) if calibration and cell else None
        if cell is not None and (cell.strategy, cell.model) != (str(strategy), model) and \
                default_cell is not None and cell.beats(default_cell):
            strategy, model, source = Strategy(cell.strategy), cell.model, "calibration"
            reasons.append(f"calibration: {cell.strategy} on {cell.model} scored {cell.accuracy:.2f} "
                           f"[{cell.ci95[0]:.2f}, {cell.ci95[1]:.2f}] in {cell.mean_latency_s:.2f} s over {cell.n} "
                           f"{level} probes on this device, above the default {default_cell.strategy}'s "
                           f"[{default_cell.ci95[0]:.2f}, {default_cell.ci95[1]:.2f}]")
        else:
            if calibration is not None and level != "unknown":
                reasons.append(_why_defaults(calibration, level, cell, default_cell))
            reasons.append(f"auto: {why}")
    if model != model_name:
        reasons.append(f"model switch: {model_name} -> {model}")
    k = 0
    if strategy.retrieves:
        k = profile.rag_passages
        if source != "request" and (level == "moderate" or is_tight(profile)):
            k = min(k, MODERATE_PASSAGES)
        reasons.append(f"profile '{profile.name}': {k} passages of up to {profile.rag_passage_tokens} tokens")
    return Plan(strategy=strategy, difficulty=level, model=model,
                adapter=resources.adapter_name if strategy.uses_adapter else None,
                k=k, backend=Backend(backend), reasons=reasons, max_context=profile.max_context,
                passage_tokens=profile.rag_passage_tokens if k else 0, source=source)


def _why_defaults(calibration: CalibrationTable, level: str, cell: Optional[Cell],
                  default_cell: Optional[Cell]) -> str:
    """Why a calibration table did not change this plan."""
    if cell is None:
        return f"calibration has under {calibration.min_samples} samples for {level}: defaults"
    if default_cell is None:
        return f"calibration's best for {level} ({cell.strategy}) has no measured default to beat: defaults"
    if (cell.strategy, cell.model) == (default_cell.strategy, default_cell.model):
        return f"calibration agrees with the defaults for {level}"
    return (f"calibration's best for {level} ({cell.strategy}, {cell.accuracy:.2f}) does not beat the default "
            f"{default_cell.strategy} ({default_cell.accuracy:.2f}) beyond their 95% intervals: defaults")


def _calibrated(calibration: Optional[CalibrationTable], level: str, model_name: str, profile: DeviceProfile,
                resources: Resources, models: Sequence[ModelOption], model_explicit: bool) -> Optional[Cell]:
    """The calibration's best cell for ``level`` that can run here now, if any."""
    if calibration is None or level == "unknown":
        return None
    adapter_model = resources.adapter_model or model_name

    def usable(cell: Cell) -> bool:
        if cell.strategy not in STRATEGIES or cell.strategy == Strategy.AUTO:
            return False
        strategy = Strategy(cell.strategy)
        if model_explicit and cell.model != model_name:
            return False
        if cell.model != model_name:
            option = find_option(models, cell.model)
            if option is None or not option.fits:
                return False
        if strategy.retrieves and not resources.has_index:
            return False
        if strategy.uses_adapter and not (resources.adapter_name and cell.model == adapter_model):
            return False
        return True

    return calibration.best(level, usable)
