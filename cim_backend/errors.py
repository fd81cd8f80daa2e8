"""Typed exceptions raised by :mod:`cim_backend`.

Callers (the assistant CLI, the reproduction script) catch :class:`CIMError` to turn any
library failure into a clean message; the subclasses say which kind of mistake it was.
"""

from __future__ import annotations


class CIMError(Exception):
    """Base class of every error raised on purpose by ``cim_backend``."""


class CIMConfigError(CIMError, ValueError):
    """A configuration is inconsistent (e.g. weight bits not a multiple of device bits)."""


class CIMStateError(CIMError, RuntimeError):
    """An operation was called in the wrong state (e.g. evaluating chips before programming)."""


class CIMExportError(CIMError, RuntimeError):
    """A model cannot be exported to ONNX (unsupported module, missing onnx package)."""
