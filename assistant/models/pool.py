"""The loaded models: load on first use behind the memory guard, keep them loaded, and
evict the least recently used when the profile's budget cannot hold another."""
from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import Optional

from assistant.errors import ModelTooLargeError
from assistant.models.catalog import DEFAULT_ALIAS, DEFAULT_MODEL, find_entry, resolve_model
from assistant.models.engine import Engine
from assistant.models.memory import MemoryEstimate, check_fits, estimate_memory
from assistant.profiles import DeviceProfile
from assistant.settings import Settings

log = logging.getLogger(__name__)


class ModelPool:
    """Engines by catalog name; ``get`` loads, ``default_name`` is the served model."""

    def __init__(self, settings: Settings, profile: DeviceProfile):
        self.settings = settings
        self.profile = profile
        self._engines: "OrderedDict[str, tuple[Engine, MemoryEstimate]]" = OrderedDict()
        self._lock = threading.Lock()
        configured = settings.model if settings.model != DEFAULT_ALIAS else DEFAULT_MODEL
        self.default_name = find_entry(configured, settings).name

    def context_for(self, trained_context: int) -> int:
        """The context to load with: the setting, else the profile's max, never more than trained."""
        wanted = self.settings.n_ctx or self.profile.max_context
        return max(64, min(wanted, trained_context))

    def canonical_name(self, name: Optional[str]) -> str:
        """``None``/``default`` -> the served model; otherwise the catalog name (raises if unknown)."""
        if not name or name == DEFAULT_ALIAS:
            return self.default_name
        return find_entry(name, self.settings).name

    def get(self, name: Optional[str] = None) -> Engine:
        """The engine for ``name``, loading it if needed (ModelTooLargeError if it cannot fit)."""
        key = self.canonical_name(name)
        with self._lock:
            if key in self._engines:
                self._engines.move_to_end(key)
                return self._engines[key][0]
            resolved = resolve_model(key, self.settings)
            estimate = estimate_memory(resolved.info, self.context_for(resolved.info.context_length))
            self._make_room(key, estimate)
            engine = Engine(resolved, estimate.n_ctx, self.profile.effective_threads())
            self._engines[key] = (engine, estimate)
            log.info("loaded model %s (n_ctx=%d, ~%.0f MB)", key, estimate.n_ctx, estimate.total_mb)
            return engine

    def _make_room(self, key: str, estimate: MemoryEstimate) -> None:
        """Evict least recently used models until the new one fits the profile's budget;
        the memory guard then also checks the RAM that is actually free."""
        check_fits(key, estimate, self.profile)  # alone it must fit the profile at all
        while self._engines and self._loaded_mb() + estimate.total_mb > self.profile.ram_budget_mb:
            evicted, _ = self._engines.popitem(last=False)
            log.info("unloaded model %s to make room for %s", evicted, key)
        if self._engines:
            try:
                check_fits(key, estimate, self.profile)
            except ModelTooLargeError:
                self._engines.clear()
                check_fits(key, estimate, self.profile)

    def _loaded_mb(self) -> float:
        return sum(est.total_mb for _, est in self._engines.values())

    def loaded_engine(self, name: Optional[str] = None) -> Optional[Engine]:
        """The engine for ``name`` if it is in memory now (never loads anything)."""
        entry = self._engines.get(self.canonical_name(name))
        return entry[0] if entry else None

    def loaded(self) -> dict[str, dict]:
        """Loaded models with their facts and memory estimates."""
        return {name: {**engine.describe(), "memory": est.as_dict()} for name, (engine, est) in self._engines.items()}
