"""The service's faults: SIGTERM ends what is in flight and exits 0 in time; SIGKILL while a
client streams gives that client an error (not a hang) and the next start serves; the unit
restarts on failure within a start limit."""
from __future__ import annotations

import configparser
import signal
import threading
import time

import httpx
import pytest

from tests.helpers import REPO_ROOT, ServerProcess

ENDLESS = {"messages": [{"role": "user", "content": "Count from one to one thousand in words."}],
           "max_tokens": 900, "temperature": 1.0, "stream": True, "logit_bias": {"0": -100, "2": -100}}


def stream_in_background(url: str, outcome: dict) -> threading.Thread:
    """A client reading a long stream; ``outcome`` gets its last line or its error."""
    def read():
        try:
            with httpx.stream("POST", f"{url}/v1/chat/completions", json=ENDLESS, timeout=60) as response:
                for line in response.iter_lines():
                    outcome.setdefault("first", time.monotonic())
                    if line:
                        outcome["last"] = line
        except httpx.HTTPError as exc:
            outcome["error"] = type(exc).__name__
        outcome["ended"] = time.monotonic()

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while "first" not in outcome and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "first" in outcome, "the stream never started"
    return thread


@pytest.mark.slow
def test_sigterm_ends_the_stream_cleanly_and_exits_0(tmp_path):
    (tmp_path / "home").mkdir()
    server = ServerProcess(tmp_path / "home", "--n-ctx", "1024")
    server.wait_ready()
    outcome: dict = {}
    reader = stream_in_background(server.base_url, outcome)
    time.sleep(0.5)
    sent = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    code = server.proc.wait(30)
    reader.join(30)
    server.stop()
    assert code == 0, server.log_path.read_text()[-2000:]
    assert outcome.get("last") == "data: [DONE]" and "error" not in outcome, outcome  # a whole answer, cut short
    assert outcome["ended"] - sent < 10


@pytest.mark.slow
def test_sigkill_mid_stream_gives_the_client_an_error_and_the_next_start_serves(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    server = ServerProcess(home, "--n-ctx", "1024")
    server.wait_ready()
    outcome: dict = {}
    reader = stream_in_background(server.base_url, outcome)
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(30)
    reader.join(30)
    server.stop()
    assert "error" in outcome and outcome.get("last") != "data: [DONE]", outcome
    again = ServerProcess(home, "--n-ctx", "1024")
    try:
        again.wait_ready()
        answer = httpx.post(f"{again.base_url}/v1/chat/completions", timeout=60,
                            json={"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4})
        assert answer.status_code == 200
    finally:
        again.stop()


def test_the_unit_restarts_on_failure_within_a_start_limit():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str
    unit.read(REPO_ROOT / "deploy" / "raspberry-pi" / "assistant.service")
    assert unit["Service"]["Restart"] == "on-failure" and int(unit["Service"]["TimeoutStopSec"]) >= 15
    assert int(unit["Unit"]["StartLimitIntervalSec"]) >= 60 and 1 < int(unit["Unit"]["StartLimitBurst"]) <= 10
