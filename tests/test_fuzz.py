"""Bad input, tried wholesale: schemathesis generates requests from the server's own
OpenAPI schema for every route (no 500, no status, content type or body outside the
schema), and a fixed corpus of nasty bodies each gets a clear 4xx and the server keeps
serving. Regressions found by the fuzzer are kept as corpus entries below."""
from __future__ import annotations

import json

import httpx
import pytest
import schemathesis
from schemathesis.checks import positive_data_acceptance
from hypothesis import HealthCheck, given, settings

from tests.helpers import ServerProcess

KEY = "fuzz-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory):
    """A server with a tiny context (every generated answer is short) and a small body limit."""
    proc = ServerProcess(tmp_path_factory.mktemp("fuzz-home"), "--api-key", KEY, "--n-ctx", "128",
                         "--max-body-bytes", "200000")
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.stop()


EXAMPLES_PER_OPERATION = 25


@pytest.mark.slow
def test_every_route_answers_within_its_schema(fuzz_server):
    """Each operation of /openapi.json, with generated requests (the pytest plugin of this
    schemathesis does not load under this pytest, so hypothesis drives it directly)."""
    schema = schemathesis.openapi.from_url(f"{fuzz_server.base_url}/openapi.json", headers=AUTH)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 4
    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck),
                  database=None)
        def check(case):
            # Every check but "schema-valid data is accepted": a valid body can still be a
            # 400 here (strategy 'rag' with nothing indexed, a prompt over the context).
            case.call_and_validate(headers=AUTH, timeout=60, excluded_checks=[positive_data_acceptance])

        check()


def post_raw(server, content: bytes, path="/v1/chat/completions", content_type="application/json"):
    return httpx.post(f"{server.base_url}{path}", content=content, timeout=60,
                      headers={**AUTH, "Content-Type": content_type})


def deep(n: int) -> bytes:
    return b'{"messages": ' + b"[" * n + b"]" * n + b"}"


def chat(**fields) -> bytes:
    body = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4, **fields}
    return json.dumps(body).encode()


NASTY = {
    "truncated JSON": (b'{"messages": [{"role": "user", "content": "Hi', 400),
    "invalid UTF-8": (b'{"messages": [{"role": "user", "content": "\xff\xfe\xfd"}]}', 400),
    "5,000-deep nesting": (deep(5000), 400),
    "NaN temperature": (b'{"messages": [{"role": "user", "content": "Hi"}], "temperature": NaN}', 400),
    "huge max_tokens": (chat(max_tokens=10**30), 400),
    "huge seed": (chat(seed=10**30), 400),
    "unknown role": (json.dumps({"messages": [{"role": "wizard", "content": "Hi"}]}).encode(), 400),
    "image content part": (json.dumps({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]}).encode(), 400),
    "n > 1": (chat(n=3), 400),
    "tools": (chat(tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}]), 400),
    "unsupported response_format": (chat(response_format={"type": "xml"}), 400),
    "100 stop strings": (chat(stop=[f"s{i}" for i in range(100)]), 400),
    "empty messages": (b'{"messages": []}', 400),
    "not an object": (b'[1, 2, 3]', 400),
    "a 5 MB body": (b'{"messages": [{"role": "user", "content": "' + b"x" * 5_000_000 + b'"}]}', 413),
    "a prompt over the context": (chat(messages=[{"role": "user", "content": "word " * 400}]), 400),
    "logit_bias out of range": (chat(logit_bias={"5": 1000}), 400),
    "model as a path": (chat(model="/etc/passwd.gguf"), 400),
}


@pytest.mark.parametrize("name", list(NASTY))
def test_nasty_bodies_get_a_clear_4xx(fuzz_server, name):
    body, status = NASTY[name]
    response = post_raw(fuzz_server, body)
    assert response.status_code == status, (name, response.status_code, response.text[:300])
    error = response.json()["error"]
    assert error["message"] and error["type"], error
    assert httpx.get(f"{fuzz_server.base_url}/health", timeout=10).json()["status"] == "ok"


def test_embeddings_nasty_inputs(fuzz_server):
    for body in ({"input": ""}, {"input": []}, {"input": [""]}, {"input": 5}, {"input": ["a"], "model": "nope"}):
        response = post_raw(fuzz_server, json.dumps(body).encode(), path="/v1/embeddings")
        assert response.status_code in (400, 404), (body, response.text)


def test_405_says_what_is_allowed(fuzz_server):
    response = httpx.delete(f"{fuzz_server.base_url}/v1/models", headers=AUTH, timeout=10)
    assert response.status_code == 405 and "GET" in response.headers.get("allow", "")
