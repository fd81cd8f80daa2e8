"""Admission: one request served at a time, ``queue_size`` more wait first in, first out,
the next is refused at once; a place is given back on every way out (error, a client
gone before or after the first chunk, normal end). The gate alone, then a real server
with ``--queue-size 1``."""
from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest

from assistant.admission import AdmissionGate
from assistant.errors import BusyError, CancelledError
from tests.helpers import ServerProcess

# SmolLM2's <|endoftext|> (0) and <|im_end|> (2) banned: it cannot end a long answer early
ENDLESS = {"messages": [{"role": "user", "content": "Count from one to one thousand in words."}],
           "max_tokens": 512, "temperature": 1.0, "seed": 1, "logit_bias": {"0": -100, "2": -100}}
SHORT = {"messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 4, "temperature": 0.0}


def test_gate_serves_in_arrival_order_and_refuses_beyond_capacity():
    gate, order, started = AdmissionGate(queue_size=2), [], threading.Event()
    release = threading.Event()

    def holder():
        with gate.turn():
            started.set()
            release.wait(10)

    def waiter(name):
        with gate.turn():
            order.append(name)

    first = threading.Thread(target=holder)
    first.start()
    started.wait(5)
    waiters = []
    for name in ("a", "b"):
        waiters.append(threading.Thread(target=waiter, args=(name,)))
        waiters[-1].start()
        while gate.waiting < len(waiters):
            time.sleep(0.01)
    with pytest.raises(BusyError):
        with gate.turn():
            pass
    assert gate.inside == 3
    release.set()
    for thread in [first, *waiters]:
        thread.join(10)
    assert order == ["a", "b"] and gate.inside == 0


def test_gate_lets_a_cancelled_waiter_go_and_gives_every_place_back():
    gate, cancel = AdmissionGate(queue_size=1), threading.Event()
    with gate.turn():
        failures = []

        def waiter():
            try:
                with gate.turn(cancel):
                    failures.append("reached the body")
            except CancelledError:
                failures.append("cancelled")

        thread = threading.Thread(target=waiter)
        thread.start()
        while gate.waiting < 1:
            time.sleep(0.01)
        cancel.set()
        thread.join(5)
        assert failures == ["cancelled"] and gate.inside == 1
    with pytest.raises(RuntimeError):
        with gate.turn():
            raise RuntimeError("an error inside")
    assert gate.inside == 0


def test_gate_max_wait_refuses_after_waiting():
    gate = AdmissionGate(queue_size=1, max_wait_s=0.2)
    with gate.turn():
        started = time.monotonic()
        with pytest.raises(BusyError, match="waited"):
            with gate.turn():
                pass
        assert time.monotonic() - started >= 0.2
    assert gate.inside == 0


@pytest.fixture(scope="module")
def small_queue(tmp_path_factory):
    """A real server that admits 1 running + 1 waiting request."""
    proc = ServerProcess(tmp_path_factory.mktemp("queue-home"), "--queue-size", "1", "--n-ctx", "1024")
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.stop()


def health(server) -> dict:
    return httpx.get(f"{server.base_url}/health", timeout=10).json()


def wait_for(server, predicate, timeout_s=30.0) -> dict:
    deadline, state = time.monotonic() + timeout_s, {}
    while time.monotonic() < deadline:
        state = health(server)
        if predicate(state):
            return state
        time.sleep(0.1)
    raise AssertionError(f"/health never reached the state: {state}")


@pytest.mark.slow
def test_exactly_queue_size_plus_one_are_admitted_and_served_in_order(small_queue):
    url, done = f"{small_queue.base_url}/v1/chat/completions", []

    def held():  # the running request: a long stream, read to its end
        with httpx.stream("POST", url, json={**ENDLESS, "stream": True}, timeout=300) as response:
            assert response.status_code == 200
            for _ in response.iter_lines():
                pass
        done.append("held")

    def queued():
        response = httpx.post(url, json=SHORT, timeout=300)
        done.append(("queued", response.status_code))

    first = threading.Thread(target=held)
    first.start()
    wait_for(small_queue, lambda h: h["requests_in_progress"] == 1)
    second = threading.Thread(target=queued)
    second.start()
    wait_for(small_queue, lambda h: h["requests_waiting"] == 1)
    refused = httpx.post(url, json=SHORT, timeout=30)
    assert refused.status_code == 503 and refused.headers["Retry-After"]
    assert refused.json()["error"]["code"] == "server_busy"
    first.join(300)
    second.join(300)
    assert done == ["held", ("queued", 200)]  # first in, first out
    assert wait_for(small_queue, lambda h: h["requests_in_progress"] == 0)["requests_in_progress"] == 0


@pytest.mark.slow
def test_a_queued_request_whose_client_left_never_reaches_the_engine(small_queue):
    url = f"{small_queue.base_url}/v1/chat/completions"
    before = health(small_queue)
    with httpx.stream("POST", url, json={**ENDLESS, "stream": True}, timeout=300) as running:
        lines = running.iter_lines()  # kept: a dropped line iterator closes the stream
        next(lines)
        with httpx.Client(timeout=30) as impatient:  # waits in the queue, then leaves
            with pytest.raises(httpx.ReadTimeout):
                impatient.post(url, json=SHORT, timeout=1.5)
        state = wait_for(small_queue, lambda h: h["abandoned_in_queue"] > before["abandoned_in_queue"])
        assert state["requests_in_progress"] == 1
    after = wait_for(small_queue, lambda h: h["requests_in_progress"] == 0)
    # the running stream was cancelled by leaving; the queued one never generated
    assert after["cancelled_generations"] == before["cancelled_generations"] + 1
    assert after["abandoned_in_queue"] == before["abandoned_in_queue"] + 1


def drop_before_the_answer(port: int, body: bytes) -> None:
    """Send a whole request and close the socket at once: the client is gone while the
    server takes its place in the queue and prepares."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)


@pytest.mark.slow
def test_clients_that_drop_leak_no_place(small_queue):
    import json

    url = f"{small_queue.base_url}/v1/chat/completions"
    for _ in range(20):  # each reads the first SSE chunk (plan and sources) and leaves
        with httpx.stream("POST", url, json={**ENDLESS, "stream": True}, timeout=120) as response:
            assert response.status_code == 200
            next(response.iter_lines())
        wait_for(small_queue, lambda h: h["requests_in_progress"] == 0)
    body = json.dumps({**ENDLESS, "stream": True}).encode()
    for _ in range(5):
        drop_before_the_answer(small_queue.port, body)
    wait_for(small_queue, lambda h: h["requests_in_progress"] == 0)
    started = time.monotonic()
    answer = httpx.post(url, json=SHORT, timeout=30)
    assert answer.status_code == 200 and time.monotonic() - started < 10
    assert health(small_queue)["requests_in_progress"] == 0
