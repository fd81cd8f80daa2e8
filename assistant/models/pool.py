"""The loaded models: load on first use behind the memory guard, keep them loaded, and
evict the least recently used when the profile's budget cannot hold another (never one
that is generating). Every model comes up with the active adapter attached, and a change
of the active adapter (``assistant adapters activate``, a new ``learn``) is seen by the
next request."""
from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Optional

from assistant.errors import AssistantError, ModelTooLargeError
from assistant.models.catalog import DEFAULT_ALIAS, DEFAULT_MODEL, find_entry, resolve_model
from assistant.models.context_growth import rag_start_size
from assistant.models.engine import Engine
from assistant.models.memory import MemoryEstimate, check_fits, estimate_memory
from assistant.profiles import DeviceProfile
from assistant.settings import Settings

log = logging.getLogger(__name__)


def read_active_adapter(settings: Settings) -> Optional[Path]:
    """The active adapter's file, as marked by ``learn``'s registry; None when none is
    marked or its file is gone. Read-only: only ``learn`` writes adapters."""
    layout = settings.layout
    try:
        name = json.loads(layout.active_adapter_marker.read_text()).get("active")
    except (OSError, ValueError, AttributeError):
        return None
    path = layout.adapters / f"{name}.gguf" if isinstance(name, str) and name else None
    return path if path is not None and path.is_file() else None


class ModelPool:
    """Engines by catalog name; ``get`` loads, ``default_name`` is the served model."""

    def __init__(self, settings: Settings, profile: DeviceProfile):
        self.settings = settings
        self.profile = profile
        self._engines: "OrderedDict[str, tuple[Engine, MemoryEstimate]]" = OrderedDict()
        self._lock = threading.RLock()
        self._adapter_marker: tuple[Optional[int], Optional[Path]] = (None, None)  # (mtime_ns, active path)
        self._adapter_errors: dict[str, str] = {}  # model -> why the active adapter is not on it
        configured = settings.model if settings.model != DEFAULT_ALIAS else DEFAULT_MODEL
        self.default_name = find_entry(configured, settings).name

    def context_for(self, trained_context: int) -> int:
        """The context to load with: the setting, else the profile's max, never more than trained."""
        wanted = self.settings.n_ctx or self.profile.max_context
        return max(64, min(wanted, trained_context))

    def _initial_context(self, n_ctx: int) -> int:
        """The context an engine starts with (grown on demand): the setting, else room for a
        RAG answer at the profile's passage budget."""
        if self.settings.initial_context is not None:
            return self.settings.initial_context
        return rag_start_size(self.profile.rag_passages, self.profile.rag_passage_tokens, n_ctx)

    def canonical_name(self, name: Optional[str]) -> str:
        """``None``/``default`` -> the served model; otherwise the catalog name (raises if unknown)."""
        if not name or name == DEFAULT_ALIAS:
            return self.default_name
        return find_entry(name, self.settings).name

    def get(self, name: Optional[str] = None) -> Engine:
        """The engine for ``name``, loading it if needed (ModelTooLargeError if it cannot
        fit), with the active adapter attached."""
        key = self.canonical_name(name)
        with self._lock:
            self._follow_active_adapter()
            if key in self._engines:
                self._engines.move_to_end(key)
                return self._engines[key][0]
            resolved = resolve_model(key, self.settings)
            kv_cache_type = self.settings.kv_cache_type or self.profile.kv_cache_type
            n_batch = self.settings.n_batch or self.profile.n_batch
            estimate = estimate_memory(resolved.info, self.context_for(resolved.info.context_length),
                                       n_batch=n_batch, kv_cache_type=kv_cache_type)
            self._make_room(key, estimate)
            # The memory guard counts the whole context: growing it later must not fail for RAM.
            engine = Engine(resolved, estimate.n_ctx, self.profile.effective_threads(), n_batch=n_batch,
                            kv_cache_type=kv_cache_type, initial_context=self._initial_context(estimate.n_ctx))
            self._engines[key] = (engine, estimate)
            log.info("loaded model %s (n_ctx=%d, ~%.0f MB)", key, estimate.n_ctx, estimate.total_mb)
            self._attach(engine, self._adapter_marker[1])
            return engine

    def adapter_error(self, model: str) -> Optional[str]:
        """Why the active adapter is not attached to ``model`` (e.g. trained for another base)."""
        return self._adapter_errors.get(model)

    def _follow_active_adapter(self) -> None:
        """Re-read the active adapter when its marker changed; re-attach to loaded engines."""
        marker = self.settings.layout.active_adapter_marker
        try:
            mtime = marker.stat().st_mtime_ns
        except OSError:
            mtime = None
        if self._adapter_marker[0] == mtime and self._adapter_marker[0] is not None:
            return
        active = read_active_adapter(self.settings)
        changed = active != self._adapter_marker[1]
        self._adapter_marker = (mtime, active)
        if changed:
            for engine, _ in self._engines.values():
                self._attach(engine, active)

    def _attach(self, engine: Engine, active: Optional[Path]) -> None:
        """Put ``active`` on ``engine`` (or take the adapter off); a mismatch is kept as the
        reason an adapter strategy cannot run on that model."""
        self._adapter_errors.pop(engine.model.name, None)
        if active is None:
            engine.unload_adapter()
            return
        if engine.adapter is not None and engine.adapter.path == active:
            return
        try:
            engine.load_adapter(active)
            log.info("adapter %s attached to %s", active.stem, engine.model.name)
        except AssistantError as exc:
            engine.unload_adapter()
            self._adapter_errors[engine.model.name] = exc.message

    def _make_room(self, key: str, estimate: MemoryEstimate) -> None:
        """Evict least recently used idle models until the new one fits the profile's
        budget; the memory guard then also checks the RAM that is actually free."""
        check_fits(key, estimate, self.profile)  # alone it must fit the profile at all
        for evicted in self._eviction_order():
            if self._loaded_mb() + estimate.total_mb <= self.profile.ram_budget_mb:
                break
            self._evict(evicted, key)
        try:
            check_fits(key, estimate, self.profile)
        except ModelTooLargeError:
            for evicted in self._eviction_order():
                self._evict(evicted, key)
            check_fits(key, estimate, self.profile)

    def _eviction_order(self) -> list[str]:
        """Loaded models that may go, least recently used first: never one generating."""
        return [name for name, (engine, _) in self._engines.items() if not engine.generating]

    def _evict(self, name: str, for_name: str) -> None:
        self._engines.pop(name, None)
        log.info("unloaded model %s to make room for %s", name, for_name)

    def evict(self, name: Optional[str] = None) -> bool:
        """Unload ``name`` now if it is idle (``keep_alive``, tests); True if it went."""
        key = self.canonical_name(name)
        with self._lock:
            entry = self._engines.get(key)
            if entry is None or entry[0].generating:
                return False
            self._evict(key, "an explicit unload")
            return True

    def _loaded_mb(self) -> float:
        return sum(est.total_mb for _, est in self._engines.values())

    def loaded_engine(self, name: Optional[str] = None) -> Optional[Engine]:
        """The engine for ``name`` if it is in memory now (never loads anything)."""
        entry = self._engines.get(self.canonical_name(name))
        return entry[0] if entry else None

    def loaded(self) -> dict[str, dict]:
        """Loaded models with their facts and memory estimates."""
        return {name: {**engine.describe(), "memory": est.as_dict()} for name, (engine, est) in self._engines.items()}
