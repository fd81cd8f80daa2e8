"""Bad input gets an OpenAI error with the right status; the server keeps serving."""
from __future__ import annotations

import concurrent.futures
import threading

import httpx
import openai
import pytest

from tests.conftest import API_KEY
from tests.helpers import write_gguf

AUTH = {"Authorization": f"Bearer {API_KEY}"}


def post(server, body=None, content=None, headers=None, path="/v1/chat/completions"):
    return httpx.post(f"{server.base_url}{path}", json=body, content=content, timeout=120,
                      headers={**AUTH, **(headers or {})})


def assert_openai_error(response, status, code=None):
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    if code:
        assert error["code"] == code
    return error


def still_serving(client):
    answer = client.chat.completions.create(model="default", messages=[{"role": "user", "content": "ok?"}], max_tokens=3)
    assert answer.choices[0].message.content is not None


def test_malformed_json(server, client):
    response = post(server, content=b'{"messages": [', headers={"Content-Type": "application/json"})
    error = assert_openai_error(response, 400)
    assert "JSON" in error["message"]
    still_serving(client)


@pytest.mark.parametrize("body, param", [
    ({"messages": "hello"}, "messages"),
    ({"messages": [{"role": "user", "content": "x"}], "temperature": "hot"}, "temperature"),
    ({"messages": [{"role": "user", "content": "x"}], "max_tokens": -3}, "max_tokens"),
    ({"messages": [{"role": "wizard", "content": "x"}]}, "messages.0.role"),
    ({"messages": [{"role": "user", "content": "x"}], "strategy": "magic"}, "strategy"),
    ({}, "messages"),
])
def test_wrong_types_and_values(server, body, param):
    error = assert_openai_error(post(server, body), 400)
    assert error["param"] == param


def test_empty_messages(server, client):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="default", messages=[])
    assert info.value.status_code == 400
    still_serving(client)


def test_unknown_model_is_404_but_default_and_absent_work(server, client):
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="gpt-17", messages=[{"role": "user", "content": "x"}])
    assert info.value.body["code"] == "model_not_found"
    for body in ({"model": "default"}, {}):
        response = post(server, {**body, "messages": [{"role": "user", "content": "x"}], "max_tokens": 2})
        assert response.status_code == 200, response.text


def test_oversized_body_is_413(server, client):
    big = "word " * 60_000  # 300 kB > the 200 kB limit of the test server
    response = post(server, {"messages": [{"role": "user", "content": big}]})
    assert_openai_error(response, 413, "payload_too_large")
    still_serving(client)


def test_over_long_prompt_is_context_length_exceeded(server, client):
    long_text = "banana " * 3000  # ~3000 tokens > n_ctx 1024, under the body limit
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="default", messages=[{"role": "user", "content": long_text}], max_tokens=5)
    assert info.value.body["code"] == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError):  # same when streaming: refused before the stream starts
        client.chat.completions.create(model="default", messages=[{"role": "user", "content": long_text}], stream=True)
    still_serving(client)


def test_wrong_or_missing_api_key_is_401(server, client):
    bad = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model="default", messages=[{"role": "user", "content": "x"}])
    response = httpx.get(f"{server.base_url}/v1/models", timeout=10)
    assert_openai_error(response, 401, "invalid_api_key")
    assert httpx.get(f"{server.base_url}/health", timeout=10).status_code == 200  # health needs no key
    still_serving(client)


def test_unknown_route_is_openai_404(server):
    response = httpx.get(f"{server.base_url}/v1/nothing-here", headers=AUTH, timeout=10)
    assert_openai_error(response, 404)


def test_too_large_model_is_refused_not_crashed(server, client):
    models_dir = server.log_path.parent / "models"
    models_dir.mkdir(exist_ok=True)
    write_gguf(models_dir / "huge-fake.gguf", sparse_size_bytes=64 * 1024**3)  # 64 GB, sparse
    response = post(server, {"model": "huge-fake", "messages": [{"role": "user", "content": "x"}]})
    error = assert_openai_error(response, 400, "model_too_large")
    assert "MB" in error["message"]
    still_serving(client)


@pytest.mark.slow
def test_eight_concurrent_requests_beyond_the_queue_get_503(server, client):
    """The session server admits 1 running + 2 queued: of 8 long requests sent at once,
    exactly 3 are answered and 5 refused at once (a limit that does not hold fails this)."""
    start = threading.Barrier(8)

    def one(i):
        start.wait()
        # end-of-text tokens banned: each answer takes its full 128 tokens (over a second)
        return post(server, {"messages": [{"role": "user", "content": f"Count to {i}"}], "max_tokens": 128,
                             "logit_bias": {"0": -100, "2": -100}})

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(one, range(8)))
    statuses = [r.status_code for r in responses]
    assert sorted(statuses) == [200] * 3 + [503] * 5, statuses
    for response in responses:
        if response.status_code == 503:
            assert response.headers.get("Retry-After")
            assert response.json()["error"]["code"] == "server_busy"
    still_serving(client)


def test_a_file_path_as_model_is_refused(server, client, tmp_path):
    """Over HTTP a model is a catalog name: a client must not make the server load any GGUF
    on its disk (a real, loadable one here)."""
    fake = write_gguf(tmp_path / "elsewhere.gguf")
    for name in (str(fake), "elsewhere.gguf", "../models/elsewhere"):
        response = post(server, {"model": name, "messages": [{"role": "user", "content": "x"}]})
        error = assert_openai_error(response, 400, "invalid_request")
        assert "not a file path" in error["message"] and error["param"] == "model"
    assert "elsewhere" not in httpx.get(f"{server.base_url}/health", timeout=10).text
    still_serving(client)


def test_backend_cim_is_refused_before_any_work(server, client):
    response = post(server, {"backend": "cim", "strategy": "rag", "messages": [{"role": "user", "content": "x"}]})
    error = assert_openai_error(response, 400, "backend_unavailable")
    assert "cim" in error["message"] and error["param"] == "backend"
    still_serving(client)
