"""The official openai client against a real ``assistant serve``."""
from __future__ import annotations

import httpx

from tests.conftest import API_KEY


def test_non_stream_answer_usage_and_plan(client):
    response = client.chat.completions.create(
        model="default", messages=[{"role": "user", "content": "Say hello."}], max_tokens=24, seed=7)
    choice = response.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content.strip()
    assert choice.finish_reason in ("stop", "length")
    usage = response.usage
    assert usage.prompt_tokens > 0 and 0 < usage.completion_tokens <= 24
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert 0 <= usage.prompt_tokens_details.cached_tokens < usage.prompt_tokens  # the engine's reused prefix
    extra = response.model_extra
    assert extra["plan"]["strategy"] == "base"
    assert extra["plan"]["model"] == "smollm2-135m-instruct"
    assert extra["sources"] == []


def test_stream_answer_plan_on_first_chunk_and_usage(client):
    stream = client.chat.completions.create(
        messages=[{"role": "user", "content": "Name a fruit."}], model="smollm2-135m-instruct",
        max_tokens=20, stream=True, stream_options={"include_usage": True}, seed=3)
    chunks = list(stream)
    first = chunks[0]
    assert first.model_extra["plan"]["strategy"] == "base"
    assert first.choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes and finishes[-1] in ("stop", "length")
    usage = chunks[-1].usage
    assert usage is not None and usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert 0 < usage.completion_tokens <= 20


def test_stream_ends_with_done(server):
    with httpx.stream("POST", f"{server.base_url}/v1/chat/completions", timeout=120,
                      headers={"Authorization": f"Bearer {API_KEY}"},
                      json={"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 5, "stream": True}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in r.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    assert all(line.startswith("data: ") for line in lines)


def test_same_seed_same_answer(client):
    def ask() -> str:
        return client.chat.completions.create(model="default", messages=[{"role": "user", "content": "Tell me a short fact about the sea."}], max_tokens=16,
            seed=1234, temperature=0.9).choices[0].message.content

    assert ask() == ask()


def test_models_lists_the_served_model(client):
    models = client.models.list()
    ids = [m.id for m in models.data]
    assert "smollm2-135m-instruct" in ids
    served = [m for m in models.data if m.id == "smollm2-135m-instruct"][0]
    assert served.model_extra["loaded"] is True and served.model_extra["default"] is True


def test_health_reports_model_and_profile(server):
    body = httpx.get(f"{server.base_url}/health", timeout=10).json()
    assert body["status"] == "ok"
    assert body["model"]["architecture"] == "llama"
    assert body["model"]["n_ctx"] == 1024
    assert body["profile"]


def test_serving_process_never_imported_torch(server, client):
    client.chat.completions.create(model="default", messages=[{"role": "user", "content": "Hi"}], max_tokens=2)
    maps = open(f"/proc/{server.proc.pid}/maps").read()
    assert "libtorch" not in maps and "/torch/" not in maps
