"""The one place that builds a ``llama_cpp.Llama``, with the one model parameter its
constructor does not expose: ``use_extra_bufts`` (llama.cpp's extra buffer types: weight
repacking, and the AMX path where a native build compiled it in).

``Llama.__init__`` takes its model parameters from ``llama_model_default_params()`` of the
low-level module; for a load without extra buffers that function is wrapped for the
duration of the constructor, under a lock. Pinned to llama-cpp-python 0.3.x and tested
(tests/test_cpu_kernels.py loads a model both ways)."""
from __future__ import annotations

import threading

_patch_lock = threading.Lock()


def load_llama(extra_buffers: bool = True, **kwargs):
    """``llama_cpp.Llama(**kwargs)``; with ``extra_buffers=False`` the model is loaded with
    ``use_extra_bufts = False``."""
    import llama_cpp
    import llama_cpp.llama_cpp as low_level

    if extra_buffers:
        return llama_cpp.Llama(**kwargs)
    with _patch_lock:
        original = low_level.llama_model_default_params

        def without_extra_buffers():
            params = original()
            params.use_extra_bufts = False
            return params

        low_level.llama_model_default_params = without_extra_buffers
        try:
            return llama_cpp.Llama(**kwargs)
        finally:
            low_level.llama_model_default_params = original
