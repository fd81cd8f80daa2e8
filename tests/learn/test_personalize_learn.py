"""``personalize --learn``: when an adapter is trained, and the router recalibrated after."""
from __future__ import annotations

import json
import subprocess
import sys

from assistant.commands.learn_after_index import should_train
from assistant.profiles import load_profile
from tests.helpers import REPO_ROOT
from tests.learn.conftest import NOTES
import pytest

pytestmark = pytest.mark.slow  # long: skipped by `make test-fast`, run by `make test`


def test_learn_choice_rules(learn_home):
    laptop, pi = load_profile("laptop-16gb"), load_profile("raspberry-pi-4-2gb")
    assert should_train("rag", laptop, learn_home) == (False, "--learn rag: retrieval only")
    assert should_train("adapter", pi, learn_home)[0] is True  # explicit: the refusal comes from learn itself
    train, why = should_train("auto", pi, learn_home)
    assert not train and "does not allow training" in why
    train, why = should_train("auto", laptop, learn_home)  # 6 short notes
    assert not train and "too few" in why


def test_personalize_learn_auto_on_a_small_pi_indexes_and_calibrates(tmp_path):
    notes = tmp_path / "notes"
    notes.mkdir()
    for name, text in NOTES.items():
        (notes / name).write_text(text)
    home = tmp_path / "home"
    result = subprocess.run(
        [sys.executable, "-m", "assistant.cli", "personalize", str(notes), "--learn", "auto", "--quiet",
         "--home", str(home), "--profile", "raspberry-pi-4-2gb", "--calibration-budget", "10"],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "learn: auto: profile 'raspberry-pi-4-2gb' does not allow training" in result.stdout
    # The whole calibration (40 probes x 2 strategies) is tested in tests/router; here its
    # budget cuts it short, and says so.
    assert "router calibrated:" in result.stdout and "stopped by the time budget" in result.stdout
    table = json.loads((home / "router" / "calibration.json").read_text())
    assert table["notes"]["budget_s"] == 10 and table["notes"]["stopped"] == "budget"
    assert {cell["strategy"] for cell in table["cells"]} == {"base", "rag"}  # no adapter on a Pi
    assert not (home / "adapters").exists()


def test_personalize_learn_adapter_refused_on_a_small_pi(tmp_path):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "a.md").write_text("# A\n\nSome text about apples.\n")
    result = subprocess.run(
        [sys.executable, "-m", "assistant.cli", "personalize", str(notes), "--learn", "adapter", "--quiet",
         "--home", str(tmp_path / "home"), "--profile", "raspberry-pi-4-2gb"],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=300)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: profile 'raspberry-pi-4-2gb' does not allow")
