"""Shared fixtures for the cim_backend tests (skipped when torch is not installed)."""

import pytest

torch = pytest.importorskip("torch")


@pytest.fixture(autouse=True)
def _seed_and_threads():
    """Seed the global RNG (read noise) for every test."""
    torch.manual_seed(1234)
    yield
