"""The ``assistant`` command: verbs, help, and one-line errors without tracebacks."""
from __future__ import annotations

import json
import subprocess
import sys

from assistant import __version__
from tests.helpers import REPO_ROOT, write_gguf


def cli(*args, input_text=None):
    return subprocess.run([sys.executable, "-m", "assistant.cli", *args], capture_output=True, text=True,
                          cwd=REPO_ROOT, input=input_text, timeout=300)


def test_version_and_help():
    assert cli("--version").stdout.strip() == f"assistant {__version__}"
    out = cli("--help").stdout
    for verb in ("serve", "chat", "models", "profile"):
        assert verb in out
    for verb in ("serve", "chat", "models", "profile"):
        result = cli(verb, "--help")
        assert result.returncode == 0 and "usage: assistant" in result.stdout


def test_unknown_verb_exits_2():
    result = cli("fly")
    assert result.returncode == 2 and "unknown verb 'fly'" in result.stderr


def test_chat_streams_an_answer_with_the_plan():
    result = cli("chat", "Say hi.", "--max-tokens", "8", "--seed", "1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    assert "[plan] strategy=base" in result.stderr


def test_chat_reads_the_question_from_stdin():
    result = cli("chat", "-", "--max-tokens", "4", "--quiet", input_text="Say hi.")
    assert result.returncode == 0 and result.stdout.strip()


def test_user_errors_are_one_line_and_non_zero(tmp_path):
    huge = write_gguf(tmp_path / "huge.gguf", sparse_size_bytes=16 * 1024**3)
    cases = [
        ("chat", "hi", "--model", "no-such-model"),
        ("chat", "hi", "--model", str(huge), "--profile", "raspberry-pi-4-2gb"),
        ("chat", "hi", "--profile", "toaster"),
        ("models", "info", str(tmp_path / "missing.gguf")),
    ]
    for args in cases:
        result = cli(*args)
        assert result.returncode == 1, (args, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (args, result.stderr)
        assert "Traceback" not in result.stderr
    assert "model_too_large" not in cli(*cases[1]).stderr  # a human message, not a code
    assert "raspberry-pi-4-2gb" in cli(*cases[1]).stderr


def test_models_list_and_info():
    listing = json.loads(cli("models", "list", "--json").stdout)
    names = {row["name"] for row in listing}
    assert {"smollm2-135m-instruct", "gemma3-270m"} <= names
    info = json.loads(cli("models", "info", "default").stdout)
    assert info["quantization"] == "Q4_1" and info["memory_at_2048"]["total_mb"] > 0


def test_profile_shows_what_fits(tmp_path):
    out = json.loads(cli("profile", "--profile", "raspberry-pi-4-2gb", "--json").stdout)
    assert out["name"] == "raspberry-pi-4-2gb" and out["training_allowed"] is False
    fits = {row["model"]: row.get("fits") for row in out["models"]}
    assert fits["smollm2-135m-instruct"] is True
    root = tmp_path / "root"
    (root / "proc" / "device-tree").mkdir(parents=True)
    (root / "proc" / "device-tree" / "model").write_text("Raspberry Pi 5 Model B Rev 1.0")
    text = cli("profile", "--system-root", str(root)).stdout
    assert "raspberry-pi-5" in text and "detected: device tree" in text
