"""The trade-off study of the edge-deployment guidelines, on this device and these notes:
learning method {base, rag, adapter, rag+adapter} (the router's strategies) x data amount x model x compression
{shipped, lower-bit requantization} x training budget {short, long} x difficulty.

Each (model, compression) pair is one independent cell with its own work home,
``$ASSISTANT_HOME/reports/study-work/<model>-<compression>`` (a copy of the index database,
the requantized variant, that cell's adapters), so the person's own adapters and catalog
stay untouched and cells can run in parallel through ``cellrunner`` (``--workers N`` or
``--address``) exactly as they run one after another. Their answers are greedy, but the
adapters train under a wall-clock budget, so a busy machine trains fewer steps: parallel
cells share the cores and can score differently from serial ones. RAG at a data amount retrieves only from the notes the adapter
at that amount trains on; probes come from notes in the full training split, so at 100%
every method has seen every probe's note.
"""
from __future__ import annotations

import functools
import logging
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

from cellrunner import Cluster, run_cells

from assistant.knowledge.base import KnowledgeBase
from assistant.knowledge.snapshot import backup_index_to
from assistant.layout import HomeLayout
from assistant.learn.data import read_chunks, split_by_document
from assistant.models.catalog import GEMMA_FILE, resolve_model
from assistant.models.chat_format import ChatMessage
from assistant.models.generation import SamplingParams
from assistant.orchestrator import AskRequest, Assistant
from assistant.models.quantize import lower_bit_variant, quantized_variant
from assistant.profiles import DeviceProfile
from assistant.router.plan import Strategy
from assistant.settings import Settings
from assistant.study.calibrate import ANSWER_TOKENS
from assistant.study.probes import Probe, build_probes, score

log = logging.getLogger(__name__)

METHODS = tuple(s.value for s in Strategy if s != Strategy.AUTO)  # base, rag, adapter, rag+adapter
STUDY_CONTEXT = 1024  # tokens: enough for a few passages and a short answer


@dataclass
class StudyGrid:
    """Which cells to run. ``budgets`` maps a label to seconds of training."""

    methods: tuple[str, ...] = METHODS
    data_pcts: tuple[int, ...] = (25, 50, 100)
    models: tuple[str, ...] = ("smollm2-135m-instruct", "gemma3-270m")
    compressions: tuple[str, ...] = ("shipped", "lower")
    budgets: dict[str, float] = field(default_factory=lambda: {"short": 60.0, "long": 240.0})
    levels: tuple[str, ...] = ("easy", "moderate", "hard")
    probes_per_level: int = 4
    rank: int = 4  # small rank/alpha: the guidelines' choice under tight resources
    alpha: int = 8
    rag_passages: int = 2  # few, short passages (limited history)
    rag_passage_tokens: int = 120
    max_tokens: int = 64  # per training example

    @classmethod
    def quick(cls) -> "StudyGrid":
        """A tiny subset for tests: one model as shipped, full data, one short budget, one
        probe per level (every code path runs; its figures mean nothing)."""
        return cls(data_pcts=(100,), models=("smollm2-135m-instruct",), compressions=("shipped",),
                   budgets={"short": 6.0},
                   probes_per_level=1, max_tokens=48)

    def describe(self) -> str:
        budgets = ", ".join(f"{k}={v:g}s" for k, v in self.budgets.items())
        return (f"methods {list(self.methods)} x data {list(self.data_pcts)}% x models {list(self.models)} x "
                f"compression {list(self.compressions)} x budgets {{{budgets}}} x difficulty {list(self.levels)}; "
                f"{self.probes_per_level} probes per level; LoRA rank {self.rank}/alpha {self.alpha}; "
                f"RAG {self.rag_passages} passages x {self.rag_passage_tokens} tokens")


@dataclass
class StudyRow:
    """One measured cell."""

    model: str
    compression: str
    quantization: str
    method: str
    data_pct: int
    budget: str
    budget_s: float
    difficulty: str
    n: int
    accuracy: float
    mean_latency_s: float
    train_s: float = 0.0
    steps: int = 0
    val_loss: float = float("nan")
    initial_val_loss: float = float("nan")
    status: str = "ok"


def prepare_workdir(settings: Settings, cell: str) -> Settings:
    """Settings for one cell's own home under the study's work folder: a consistent copy of
    the index database and links to already assembled catalog files (never a second 250 MB copy)."""
    work = Settings(home=workdir(settings) / cell, profiles_dir=settings.profiles_dir,
                    n_ctx=STUDY_CONTEXT, n_threads=settings.n_threads)
    backup_index_to(settings, work)
    work.layout.models.mkdir(parents=True, exist_ok=True)
    for name in (GEMMA_FILE, GEMMA_FILE + ".sha256"):
        if (settings.layout.models / name).is_file() and not (work.layout.models / name).exists():
            (work.layout.models / name).symlink_to(settings.layout.models / name)
    return work


def model_variant(work: Settings, model: str, compression: str, threads: int) -> tuple[str, str]:
    """(catalog name in the work home, quantization) of ``model`` at ``compression``. The
    variant is written into the work home's models folder, so it is a catalog model there
    (the adapter trainer and the engine then find it by name)."""
    resolved = resolve_model(model, work)
    if compression == "shipped":
        return resolved.name, resolved.info.quantization
    quantization = lower_bit_variant(resolved)
    path = quantized_variant(resolved, quantization, work.models_dir, threads)
    return path.stem, quantization


def study_probes(work: Settings, grid: StudyGrid) -> tuple[list[Probe], dict[int, set[str]]]:
    """Probes from the notes of the full training split, and the notes each data amount keeps."""
    chunks = read_chunks(work)
    kept = {pct: {e.document for e in split_by_document(chunks, data_fraction=pct / 100).train}
            for pct in grid.data_pcts}
    full = {e.document for e in split_by_document(chunks).train}
    probes = build_probes([c for c in chunks if c.path in full], grid.probes_per_level, levels=grid.levels)
    return probes, kept


class Evaluator:
    """Answers probes through ``Assistant.ask`` (what is served is what is measured) with
    one model and method, retrieving only from the allowed notes."""

    def __init__(self, assistant: Assistant, model: str, grid: StudyGrid):
        self.assistant, self.model, self.grid = assistant, model, grid

    def run(self, probes: Sequence[Probe], method: str, allowed: set[str]) -> dict[str, tuple[int, float, float]]:
        """difficulty -> (n, mean score, mean latency)."""
        by_level: dict[str, list[tuple[float, float]]] = {}
        for probe in probes:
            request = AskRequest(
                messages=[ChatMessage("user", probe.question)], model=self.model, strategy=Strategy(method),
                sampling=SamplingParams(max_tokens=ANSWER_TOKENS[probe.level], temperature=0.0, seed=0),
                allowed_paths=frozenset(allowed), k=self.grid.rag_passages, passage_tokens=self.grid.rag_passage_tokens)
            started = time.perf_counter()
            text = self.assistant.answer(request).text
            by_level.setdefault(probe.level, []).append((score(probe, text), time.perf_counter() - started))
        return {level: (len(v), sum(s for s, _ in v) / len(v), sum(t for _, t in v) / len(v))
                for level, v in by_level.items()}


class _StudyRun:
    """The grid's cells, one model variant at a time; rows accumulate in ``rows``."""

    def __init__(self, work: Settings, profile: DeviceProfile, grid: StudyGrid, assistant: Assistant,
                 on_progress: Optional[Callable[[str], None]]):
        self.work, self.profile, self.grid, self.assistant = work, profile, grid, assistant
        self.tick = on_progress or (lambda _label: None)
        self.probes, self.kept = study_probes(work, grid)
        self.all_notes = set().union(*self.kept.values()) if self.kept else set()
        self.adapter_methods = [m for m in grid.methods if Strategy(m).uses_adapter]
        self.rows: list[StudyRow] = []

    def add(self, variant: tuple[str, str, str], method: str, pct: int, budget: str, budget_s: float,
            results: dict, train: Optional[dict] = None, status: str = "ok") -> None:
        model, compression, quantization = variant
        for level in self.grid.levels:
            n, accuracy, latency = results.get(level, (0, float("nan"), float("nan")))
            self.rows.append(StudyRow(model, compression, quantization, method, pct, budget, budget_s, level, n,
                                      accuracy, latency, status=status, **(train or {})))

    def run_variant(self, model: str, compression: str) -> None:
        """Every method, data amount and budget on ``model`` at ``compression``."""
        try:
            name, quantization = model_variant(self.work, model, compression, self.profile.effective_threads())
            self.assistant.pool.get(name)
        except Exception as exc:  # noqa: BLE001 - a model missing here is a row, not a crash
            log.warning("study: %s/%s unavailable: %s", model, compression, exc)
            for method in self.grid.methods:
                self.add((model, compression, "-"), method, 100, "-", 0.0, {}, status=f"unavailable: {exc}")
            self.tick(f"{model}/{compression} unavailable")
            return
        variant, evaluator = (model, compression, quantization), Evaluator(self.assistant, name, self.grid)
        if Strategy.BASE in self.grid.methods:
            self.add(variant, Strategy.BASE, 0, "-", 0.0, evaluator.run(self.probes, Strategy.BASE, self.all_notes))
            self.tick(f"{model}/{compression} base")
        for pct in self.grid.data_pcts:
            if Strategy.RAG in self.grid.methods:
                self.add(variant, Strategy.RAG, pct, "-", 0.0, evaluator.run(self.probes, Strategy.RAG, self.kept[pct]))
                self.tick(f"{model}/{compression} rag {pct}%")
            for budget, seconds in self.grid.budgets.items() if self.adapter_methods else []:
                self.run_budget(variant, name, evaluator, pct, budget, seconds)

    def run_budget(self, variant: tuple[str, str, str], name: str, evaluator: Evaluator, pct: int, budget: str,
                   seconds: float) -> None:
        """Train an adapter on ``pct``% of the notes for ``seconds`` (it becomes the work
        home's active adapter, which the pool attaches), then measure the adapter methods."""
        from assistant.learn.pipeline import learn
        from assistant.learn.train import TrainConfig

        grid, label = self.grid, f"{variant[0]}/{variant[1]} {pct}% {budget}"
        config = TrainConfig(rank=grid.rank, alpha=grid.alpha, target_modules=("q_proj", "v_proj"), budget_s=seconds,
                             batch_size=2, max_tokens=grid.max_tokens, evaluations=4, max_validation_examples=6)
        try:
            result = learn(self.work, self.profile, name, data_fraction=pct / 100, activate=True, config=config).result
        except Exception as exc:  # noqa: BLE001 - e.g. transformers cannot load this GGUF
            log.warning("study: training %s at %d%% failed: %s", name, pct, exc)
            for method in self.adapter_methods:
                self.add(variant, method, pct, budget, seconds, {}, status=f"training failed: {str(exc)[:120]}")
            self.tick(f"{label}: training failed")
            return
        train = {"train_s": round(result.train_seconds, 1), "steps": result.steps,
                 "val_loss": result.best_val_loss, "initial_val_loss": result.initial_val_loss}
        self.tick(f"{label} trained")
        for method in self.adapter_methods:
            self.add(variant, method, pct, budget, seconds, evaluator.run(self.probes, method, self.kept[pct]), train)
            self.tick(f"{label} {method}")


@dataclass(frozen=True)
class StudyCell:
    """One independent unit of the study: every method, data amount and budget on one
    model at one compression."""

    model: str
    compression: str

    @property
    def name(self) -> str:
        return f"{self.model}-{self.compression}"


def run_cell(settings: Settings, profile: DeviceProfile, grid: StudyGrid, cell: StudyCell,
             on_progress: Optional[Callable[[str], None]] = None) -> list[StudyRow]:
    """The rows of one cell, measured in its own work home with its own model pool (a
    module-level function, so a Dask worker can run it)."""
    from assistant.models.pool import ModelPool

    work = prepare_workdir(settings, cell.name)
    knowledge = KnowledgeBase.open(settings, n_threads=profile.effective_threads())
    try:
        run = _StudyRun(work, profile, grid, Assistant(work, profile, ModelPool(work, profile), knowledge),
                        on_progress)
        run.run_variant(cell.model, cell.compression)
    finally:
        knowledge.close()
    return run.rows


def study_cells(grid: StudyGrid) -> list[StudyCell]:
    """The grid's cells in report order (models, then compressions)."""
    return [StudyCell(model, compression) for model in grid.models for compression in grid.compressions]


def run_study(settings: Settings, profile: DeviceProfile, grid: StudyGrid,
              on_progress: Optional[Callable[[str], None]] = None, cluster: Cluster = Cluster()) -> list[StudyRow]:
    """Run the grid; one row per (model, compression, method, data, budget, difficulty).
    A cell that cannot run here (a model that cannot be trained, a missing package) is
    kept as a row with its ``status`` saying why. Serially, ``on_progress`` ticks at every
    step; on a cluster it ticks once per step of a cell when that cell comes back."""
    cells = study_cells(grid)
    if cluster.serial:
        work = functools.partial(run_cell, settings, profile, grid, on_progress=on_progress)
        return [row for rows in run_cells(work, cells) for row in rows]
    per_cell = step_count(grid) // max(1, len(cells))

    def finished(cell: StudyCell, _rows: list[StudyRow]) -> None:
        for _ in range(per_cell):
            (on_progress or (lambda _label: None))(f"{cell.name} done")

    results = run_cells(functools.partial(run_cell, settings, profile, grid), cells, cluster, finished)
    return [row for rows in results for row in rows]


def step_count(grid: StudyGrid) -> int:
    """Progress ticks ``run_study`` makes (for the progress bar)."""
    adapter_methods = len([m for m in grid.methods if Strategy(m).uses_adapter])
    per_data = ("rag" in grid.methods) + (len(grid.budgets) * (1 + adapter_methods) if adapter_methods else 0)
    return len(grid.models) * len(grid.compressions) * ((Strategy.BASE in grid.methods) + len(grid.data_pcts) * per_data)


def rows_as_dicts(rows: Sequence[StudyRow]) -> list[dict]:
    return [asdict(r) for r in rows]


def clean_workdir(settings: Settings) -> None:
    """Remove the study's adapters, in every cell's home (the variants are kept: they are
    slow to make)."""
    root = workdir(settings)
    for home in [root, *(p for p in root.iterdir() if p.is_dir())] if root.is_dir() else []:
        shutil.rmtree(HomeLayout(home).adapters, ignore_errors=True)


def workdir(settings: Settings) -> Path:
    """The folder under which every cell has its own work home."""
    return settings.layout.study_work
