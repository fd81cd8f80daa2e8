"""The Ollama API with the official ``ollama`` library (and, for what the library hides,
plain HTTP) against a real ``assistant serve``; a replay of what Open WebUI asks of an
Ollama connection; errors in Ollama's shape; ``--ollama-port`` and ``keep_alive``."""
from __future__ import annotations

import json
import re
from datetime import datetime

import httpx
import ollama
import pytest

from tests.conftest import API_KEY
from tests.helpers import ServerProcess, free_port

MODEL = "smollm2-135m-instruct"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
DURATIONS = ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration")


@pytest.fixture(scope="module")
def ollama_client(server):
    return ollama.Client(host=server.base_url, headers=AUTH, timeout=120)


def post(server, path: str, body: dict, **kwargs) -> httpx.Response:
    return httpx.post(f"{server.base_url}{path}", json=body, headers=AUTH, timeout=120, **kwargs)


def test_root_answers_probes_with_text_and_browsers_with_the_page(server):
    probe = httpx.get(f"{server.base_url}/", timeout=10)
    assert probe.status_code == 200 and probe.text == "Ollama is running"
    assert probe.headers["content-type"].startswith("text/plain")
    assert httpx.head(f"{server.base_url}/", timeout=10).status_code == 200
    page = httpx.get(f"{server.base_url}/", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"},
                     timeout=10)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<html" in page.text.lower()


def test_list_and_version(server, ollama_client):
    version = httpx.get(f"{server.base_url}/api/version", headers=AUTH, timeout=10).json()["version"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", version)
    models = {m.model: m for m in ollama_client.list().models}
    served = models[f"{MODEL}:latest"]
    assert served.size > 10_000_000 and served.modified_at is not None and len(served.digest) == 64
    assert served.details.format == "gguf" and served.details.family == "llama"
    assert served.details.quantization_level == "Q4_1" and served.details.parameter_size.endswith("M")
    assert all(name.endswith(":latest") for name in models)


def test_chat(ollama_client):
    response = ollama_client.chat(model=MODEL, messages=[{"role": "user", "content": "Say hello."}],
                                  options={"num_predict": 8, "seed": 3})
    assert response.message.role == "assistant" and response.message.content.strip()
    assert response.done and response.done_reason in ("stop", "length")
    assert response.model == f"{MODEL}:latest"
    assert response.prompt_eval_count > 0 and 0 < response.eval_count <= 8
    assert all(getattr(response, name) > 0 for name in DURATIONS)


def test_streaming_chat(ollama_client):
    parts = list(ollama_client.chat(model=f"{MODEL}:latest", messages=[{"role": "user", "content": "Name a fruit."}],
                                    options={"num_predict": 8, "temperature": 0.2}, stream=True))
    assert len(parts) >= 3  # the first line (plan), text, the final line
    assert not any(part.done for part in parts[:-1]) and parts[-1].done
    assert "".join(part.message.content for part in parts).strip()
    assert parts[-1].eval_count > 0 and parts[-1].done_reason in ("stop", "length")


def test_generate(ollama_client):
    response = ollama_client.generate(model=MODEL, prompt="Name a colour.", system="Answer in one word.",
                                      options={"num_predict": 6, "top_k": 20, "top_p": 0.9, "stop": ["\n\n"]})
    assert response.response.strip() and response.done and 0 < response.eval_count <= 6


def test_show_and_ps(server, ollama_client):
    shown = ollama_client.show(MODEL)
    assert shown.modelinfo["general.architecture"] == "llama"
    assert shown.modelinfo["llama.context_length"] > 0 and shown.modelinfo["general.parameter_count"] > 0
    assert shown.details.family == "llama" and "completion" in shown.capabilities
    assert shown.template and "temperature" in shown.parameters
    older = post(server, "/api/show", {"name": f"{MODEL}:latest"})  # the older field
    assert older.status_code == 200 and "model_info" in older.json()
    running = {m.model: m for m in ollama_client.ps().models}
    assert running[f"{MODEL}:latest"].context_length == 1024 and running[f"{MODEL}:latest"].size > 0


def test_embed(server, ollama_client):
    response = ollama_client.embed(model="all-minilm", input=["first text", "second text"])
    assert len(response.embeddings) == 2 and all(len(v) == 384 for v in response.embeddings)
    older = ollama_client.embeddings(model="all-minilm", prompt="first text")
    assert older.embedding == pytest.approx(response.embeddings[0], abs=1e-5)
    by_chat_model = post(server, "/api/embed", {"model": MODEL, "input": "hello"}).json()
    assert by_chat_model["model"].startswith("all-MiniLM-L6-v2") and len(by_chat_model["embeddings"][0]) == 384
    assert by_chat_model["requested_model"] == MODEL and "chat model" in by_chat_model["warnings"][0]


def test_open_webui_replay(server):
    """What Open WebUI sends to an Ollama connection, and the fields it reads back."""
    headers = {**AUTH, "Content-Type": "application/json"}
    version = httpx.get(f"{server.base_url}/api/version", headers=headers, timeout=10).json()
    assert isinstance(version["version"], str)
    tags = httpx.get(f"{server.base_url}/api/tags", headers=headers, timeout=10).json()
    by_id = {m["model"]: m for m in tags["models"]}  # merge_ollama_models_lists keys on "model"
    assert by_id[f"{MODEL}:latest"]["name"] == f"{MODEL}:latest"
    running = httpx.get(f"{server.base_url}/api/ps", headers=headers, timeout=10).json()
    expires = {m["name"]: m["expires_at"] for m in running["models"] if "expires_at" in m}
    assert int(datetime.fromisoformat(expires[f"{MODEL}:latest"]).timestamp()) > 0
    body = {"model": f"{MODEL}:latest", "messages": [{"role": "system", "content": "Be brief."},
                                                      {"role": "user", "content": "Hi"}],
            "stream": True, "options": {"num_predict": 6, "temperature": 0.8}, "keep_alive": "5m"}
    with httpx.stream("POST", f"{server.base_url}/api/chat", content=json.dumps(body), headers=headers,
                      timeout=120) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/x-ndjson")
        lines = [json.loads(line) for line in response.iter_lines() if line]
    assert all(line.get("model") == f"{MODEL}:latest" and "content" in line["message"] for line in lines)
    assert "plan" in lines[0] and "sources" in lines[0]
    last = lines[-1]
    assert last["done"] is True and not any(line["done"] for line in lines[:-1])
    for field in ("eval_count", "eval_duration", "prompt_eval_count", "prompt_eval_duration", "total_duration"):
        assert isinstance(last[field], int)
    assert last["eval_count"] / (last["eval_duration"] / 1e9) > 0  # Open WebUI's response_token/s


def test_num_ctx_above_the_loaded_context_is_capped_and_said(server):
    answer = post(server, "/api/generate", {"model": MODEL, "prompt": "Hi", "stream": False,
                                            "options": {"num_predict": 3, "num_ctx": 100_000}}).json()
    assert answer["num_ctx"] == 1024 and "capped" in answer["warnings"][0]


@pytest.mark.parametrize("path, body, status", [
    ("/api/chat", {"model": "no-such-model", "messages": [{"role": "user", "content": "Hi"}]}, 404),
    ("/api/show", {"model": f"{MODEL}:7b"}, 404),
    ("/api/embed", {"model": "no-such-model", "input": "Hi"}, 404),
    ("/api/generate", {"model": "../../etc/passwd.gguf", "prompt": "Hi"}, 404),
    ("/api/chat", {"messages": [{"role": "user", "content": "Hi"}]}, 400),
    ("/api/chat", {"model": MODEL, "messages": [{"role": "wizard", "content": "Hi"}]}, 400),
    ("/api/chat", {"model": MODEL, "messages": [], "options": {"num_predict": 0}}, 400),
    ("/api/chat", {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}],
                   "tools": [{"type": "function", "function": {"name": "f"}}]}, 400),
    ("/api/generate", {"model": MODEL, "prompt": "Hi", "keep_alive": "soon"}, 400),
    ("/api/generate", {"model": MODEL, "prompt": "Hi", "raw": True}, 400),
    ("/api/show", {}, 400),
])
def test_errors_in_ollama_shape(server, path, body, status):
    response = post(server, path, body)
    assert response.status_code == status, response.text
    assert isinstance(response.json()["error"], str) and response.json()["error"]


def test_errors_through_the_library_and_without_key(server, ollama_client):
    with pytest.raises(ollama.ResponseError) as caught:
        ollama_client.chat(model="no-such-model", messages=[{"role": "user", "content": "Hi"}])
    assert caught.value.status_code == 404 and "no-such-model" in caught.value.error
    bad_json = httpx.post(f"{server.base_url}/api/chat", content=b'{"model": ', headers=AUTH, timeout=10)
    assert bad_json.status_code == 400 and "JSON" in bad_json.json()["error"]
    no_key = httpx.get(f"{server.base_url}/api/tags", timeout=10)
    assert no_key.status_code == 401 and isinstance(no_key.json()["error"], str)
    assert httpx.get(f"{server.base_url}/api/nothing", headers=AUTH, timeout=10).json() == {"error": "Not Found"}


def test_curl_style_form_content_type_is_read_as_json(server):
    """Ollama's own examples use ``curl -d``, which labels the JSON as form data."""
    response = httpx.post(f"{server.base_url}/api/generate", timeout=120,
                          headers={**AUTH, "Content-Type": "application/x-www-form-urlencoded"},
                          content=json.dumps({"model": MODEL, "prompt": "Hi", "stream": False,
                                              "options": {"num_predict": 2}}))
    assert response.status_code == 200 and response.json()["done"] is True


@pytest.fixture(scope="module")
def two_port_server(tmp_path_factory):
    """A server also listening where Ollama clients look (a free port stands in for 11434)."""
    ollama_port = free_port()
    proc = ServerProcess(tmp_path_factory.mktemp("ollama-port-home"), "--ollama-port", str(ollama_port),
                         "--n-ctx", "512")
    try:
        proc.wait_ready()
        yield proc, f"http://127.0.0.1:{ollama_port}"
    finally:
        proc.stop()


def test_ollama_port_and_keep_alive(two_port_server):
    proc, ollama_url = two_port_server
    assert httpx.get(f"{ollama_url}/", timeout=10).text == "Ollama is running"
    client = ollama.Client(host=ollama_url, timeout=120)
    answer = client.generate(model=MODEL, prompt="Hi", options={"num_predict": 3}, keep_alive=0)
    assert answer.done
    assert client.ps().models == []  # keep_alive 0: unloaded after the request
    loaded = client.generate(model=MODEL, prompt="")  # an empty prompt only loads the model
    assert loaded.done_reason == "load" and [m.model for m in client.ps().models] == [f"{MODEL}:latest"]
    unloaded = client.chat(model=MODEL, messages=[], keep_alive="0s")
    assert unloaded.done_reason == "unload" and client.ps().models == []
    assert httpx.get(f"{proc.base_url}/health", timeout=10).status_code == 200


def test_busy_is_a_503_with_retry_after_in_ollama_shape_and_openai_shape_elsewhere():
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from assistant.errors import BusyError
    from assistant.server.errors import install_error_handlers
    from assistant.server.ollama_errors import install_ollama_error_shape

    app = FastAPI()
    install_error_handlers(app)

    @app.get("/api/busy")
    @app.get("/v1/busy")
    def busy():
        raise BusyError("the model is busy")

    install_ollama_error_shape(app)
    with TestClient(app) as test_client:
        ollama_answer = test_client.get("/api/busy")
        openai_answer = test_client.get("/v1/busy")
    assert ollama_answer.status_code == 503 and ollama_answer.json() == {"error": "the model is busy"}
    assert ollama_answer.headers["retry-after"] == "1"
    assert openai_answer.status_code == 503 and openai_answer.json()["error"]["code"] == "server_busy"
