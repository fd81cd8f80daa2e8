"""The trade-off study of the edge-deployment guidelines, on this device and these notes:
learning method {none, rag, adapter, rag+adapter} x data amount x model x compression
{shipped, lower-bit requantization} x training budget {short, long} x difficulty.

Work happens in ``$ASSISTANT_HOME/reports/study-work`` (a copy of the index database,
the requantized variants, the study's adapters), so the person's own adapters and
catalog stay untouched. RAG at a data amount retrieves only from the notes the adapter
at that amount trains on; probes come from notes in the full training split, so at 100%
every method has seen every probe's note.
"""
from __future__ import annotations

import logging
import shutil
import sqlite3
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

from assistant.knowledge.base import KnowledgeBase
from assistant.knowledge.rag_prompt import build_rag_messages
from assistant.learn.data import read_chunks, split_by_document
from assistant.models.catalog import GEMMA_FILE, resolve_model
from assistant.models.chat_format import ChatMessage
from assistant.models.generation import SamplingParams, TextPiece
from assistant.models.quantize import lower_bit_variant, quantized_variant
from assistant.profiles import DeviceProfile
from assistant.settings import Settings
from assistant.study.calibrate import ANSWER_TOKENS
from assistant.study.probes import Probe, build_probes, score

log = logging.getLogger(__name__)

METHODS = ("none", "rag", "adapter", "rag+adapter")
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
        """A tiny subset for tests: one model as shipped, full data, one short budget."""
        return cls(data_pcts=(100,), models=("smollm2-135m-instruct",), compressions=("shipped",),
                   budgets={"short": 6.0},
                   probes_per_level=2, max_tokens=48)

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


def prepare_workdir(settings: Settings) -> Settings:
    """Settings for the study's own home: a consistent copy of the index database and
    links to already assembled catalog files (never a second 250 MB copy)."""
    work = Settings(home=settings.home / "reports" / "study-work", profiles_dir=settings.profiles_dir,
                    n_ctx=settings.n_ctx, n_threads=settings.n_threads)
    source = settings.home / "knowledge" / "index.sqlite"
    target = work.home / "knowledge" / "index.sqlite"
    target.parent.mkdir(parents=True, exist_ok=True)
    src, dst = sqlite3.connect(f"file:{source}?mode=ro", uri=True), sqlite3.connect(target)
    with dst:
        src.backup(dst)
    src.close()
    dst.close()
    work.models_dir.mkdir(parents=True, exist_ok=True)
    for name in (GEMMA_FILE, GEMMA_FILE + ".sha256"):
        if (settings.models_dir / name).is_file() and not (work.models_dir / name).exists():
            (work.models_dir / name).symlink_to(settings.models_dir / name)
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
    """Answers probes with one engine, for a method, retrieving only from allowed notes."""

    def __init__(self, engine, knowledge: KnowledgeBase, grid: StudyGrid):
        self.engine, self.knowledge, self.grid = engine, knowledge, grid

    def run(self, probes: Sequence[Probe], method: str, allowed: set[str]) -> dict[str, tuple[int, float, float]]:
        """difficulty -> (n, mean score, mean latency)."""
        by_level: dict[str, list[tuple[float, float]]] = {}
        for probe in probes:
            started = time.perf_counter()
            messages = [ChatMessage("user", probe.question)]
            if "rag" in method:
                found = [p for p in self.knowledge.search(probe.question, 20) if p.path in allowed]
                messages, _ = build_rag_messages(messages, found[: self.grid.rag_passages],
                                                 lambda t: len(self.engine.tokenize(t)), self.grid.rag_passage_tokens,
                                                 self.engine.n_ctx - ANSWER_TOKENS[probe.level])
            params = SamplingParams(max_tokens=ANSWER_TOKENS[probe.level], temperature=0.0, seed=0)
            prompt = self.engine.chat_prompt(messages, params, use_adapter="adapter" in method)
            text = "".join(e.text for e in self.engine.generate(prompt) if isinstance(e, TextPiece))
            by_level.setdefault(probe.level, []).append((score(probe, text), time.perf_counter() - started))
        return {level: (len(v), sum(s for s, _ in v) / len(v), sum(t for _, t in v) / len(v))
                for level, v in by_level.items()}


def run_study(settings: Settings, profile: DeviceProfile, grid: StudyGrid,
              on_progress: Optional[Callable[[str], None]] = None) -> list[StudyRow]:
    """Run the grid; one row per (model, compression, method, data, budget, difficulty).
    A cell that cannot run here (a model that cannot be trained, a missing package) is
    kept as a row with its ``status`` saying why."""
    from assistant.learn.pipeline import learn
    from assistant.learn.train import TrainConfig
    from assistant.models.engine import Engine

    work = prepare_workdir(settings)
    threads = profile.effective_threads()
    probes, kept = study_probes(work, grid)
    all_notes = set().union(*kept.values()) if kept else set()
    knowledge = KnowledgeBase.open(settings, n_threads=threads)
    rows: list[StudyRow] = []
    tick = on_progress or (lambda _label: None)
    adapter_methods = [m for m in grid.methods if "adapter" in m]

    def add(model, compression, quantization, method, pct, budget, budget_s, results, train=None, status="ok"):
        for level in grid.levels:
            n, accuracy, latency = results.get(level, (0, float("nan"), float("nan")))
            rows.append(StudyRow(model, compression, quantization, method, pct, budget, budget_s, level, n,
                                 accuracy, latency, status=status, **(train or {})))

    for model in grid.models:
        for compression in grid.compressions:
            try:
                name, quantization = model_variant(work, model, compression, threads)
                resolved = resolve_model(name, work)
                engine = Engine(resolved, min(STUDY_CONTEXT, resolved.info.context_length), threads)
            except Exception as exc:  # noqa: BLE001 - a model missing here is a row, not a crash
                log.warning("study: %s/%s unavailable: %s", model, compression, exc)
                for method in grid.methods:
                    add(model, compression, "-", method, 100, "-", 0.0, {}, status=f"unavailable: {exc}")
                tick(f"{model}/{compression} unavailable")
                continue
            evaluator = Evaluator(engine, knowledge, grid)
            if "none" in grid.methods:
                add(model, compression, quantization, "none", 0, "-", 0.0, evaluator.run(probes, "none", all_notes))
                tick(f"{model}/{compression} none")
            for pct in grid.data_pcts:
                if "rag" in grid.methods:
                    add(model, compression, quantization, "rag", pct, "-", 0.0, evaluator.run(probes, "rag", kept[pct]))
                    tick(f"{model}/{compression} rag {pct}%")
                for budget, seconds in grid.budgets.items() if adapter_methods else []:
                    config = TrainConfig(rank=grid.rank, alpha=grid.alpha, target_modules=("q_proj", "v_proj"),
                                         budget_s=seconds, batch_size=2, max_tokens=grid.max_tokens,
                                         evaluations=4, max_validation_examples=6)
                    try:
                        outcome = learn(work, profile, name, data_fraction=pct / 100, activate=False, config=config)
                        engine.load_adapter(outcome.adapter_path)
                    except Exception as exc:  # noqa: BLE001 - e.g. transformers cannot load this GGUF
                        log.warning("study: training %s at %d%% failed: %s", name, pct, exc)
                        for method in adapter_methods:
                            add(model, compression, quantization, method, pct, budget, seconds, {},
                                status=f"training failed: {str(exc)[:120]}")
                        tick(f"{model}/{compression} {pct}% {budget}: training failed")
                        continue
                    result = outcome.result
                    train = {"train_s": round(result.train_seconds, 1), "steps": result.steps,
                             "val_loss": result.best_val_loss, "initial_val_loss": result.initial_val_loss}
                    tick(f"{model}/{compression} trained {pct}% {budget}")
                    for method in adapter_methods:
                        add(model, compression, quantization, method, pct, budget, seconds,
                            evaluator.run(probes, method, kept[pct]), train)
                        tick(f"{model}/{compression} {method} {pct}% {budget}")
            del engine, evaluator
    knowledge.close()
    return rows


def step_count(grid: StudyGrid) -> int:
    """Progress ticks ``run_study`` makes (for the progress bar)."""
    adapter_methods = len([m for m in grid.methods if "adapter" in m])
    per_data = ("rag" in grid.methods) + (len(grid.budgets) * (1 + adapter_methods) if adapter_methods else 0)
    return len(grid.models) * len(grid.compressions) * (("none" in grid.methods) + len(grid.data_pcts) * per_data)


def rows_as_dicts(rows: Sequence[StudyRow]) -> list[dict]:
    return [asdict(r) for r in rows]


def clean_workdir(settings: Settings) -> None:
    """Remove the study's adapters (the variants are kept: they are slow to make)."""
    shutil.rmtree(settings.home / "reports" / "study-work" / "adapters", ignore_errors=True)


def workdir(settings: Settings) -> Path:
    return settings.home / "reports" / "study-work"
