"""The CLI's output is the product's own: a library's warning goes to logging at debug
level, and shows only with ``--verbose`` or ``ASSISTANT_DEBUG=1``."""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import warnings

import pytest

from assistant import cli
from tests.helpers import REPO_ROOT

NOISY_LIBRARY = '''
import warnings


def main(argv):
    warnings.warn("`old_arg` is deprecated and will be removed", FutureWarning)
    print("the verb's own output")
    return 0
'''


@pytest.fixture
def noisy_verb(tmp_path, monkeypatch):
    """A verb whose module warns like a third-party library does."""
    (tmp_path / "noisy_library_verb.py").write_text(NOISY_LIBRARY)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(cli.VERBS, "noisy", ("noisy_library_verb", "warns like a library"))
    monkeypatch.delenv(cli.DEBUG_ENV, raising=False)
    yield
    sys.modules.pop("noisy_library_verb", None)


def test_library_warnings_go_to_debug_logging(noisy_verb, capsys, caplog):
    with caplog.at_level(logging.DEBUG, logger=cli.WARNINGS_LOGGER):
        assert cli.main(["noisy"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "the verb's own output\n"
    assert "deprecated" not in captured.err
    [record] = [r for r in caplog.records if r.name == cli.WARNINGS_LOGGER]
    assert record.levelno == logging.DEBUG and "FutureWarning" in record.getMessage()


def run_noisy(tmp_path, *args: str, debug_env: str = "") -> subprocess.CompletedProcess:
    """The real entry point in a fresh interpreter, with the noisy verb registered."""
    (tmp_path / "noisy_library_verb.py").write_text(NOISY_LIBRARY)
    script = ("import sys; from assistant import cli; cli.VERBS['noisy'] = ('noisy_library_verb', ''); "
              "raise SystemExit(cli.main(sys.argv[1:]))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO_ROOT)]), cli.DEBUG_ENV: debug_env}
    return subprocess.run([sys.executable, "-c", script, *args], env=env, capture_output=True, text=True,
                          timeout=60)


def test_a_plain_run_shows_only_the_products_output(tmp_path):
    result = run_noisy(tmp_path, "noisy")
    assert result.returncode == 0
    assert result.stdout == "the verb's own output\n" and result.stderr == ""


@pytest.mark.parametrize("args, debug_env", [(["--verbose", "noisy"], ""), (["noisy"], "1")])
def test_verbose_or_debug_env_shows_them(tmp_path, args, debug_env):
    result = run_noisy(tmp_path, *args, debug_env=debug_env)
    assert result.returncode == 0
    assert "FutureWarning: `old_arg` is deprecated" in result.stderr


def test_the_warning_setup_is_undone_after_the_verb(noisy_verb):
    before = warnings.showwarning
    cli.main(["noisy"])
    assert warnings.showwarning is before
