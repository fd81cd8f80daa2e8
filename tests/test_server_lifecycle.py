"""Loading state, client disconnects, and the default bind address."""
from __future__ import annotations

import time

import httpx

from assistant.server import create_app
from assistant.settings import Settings
from tests.conftest import API_KEY


def test_health_is_503_while_loading_and_v1_refuses(tmp_path):
    # No lifespan has run, so the model is not loaded: exactly the loading state.
    app = create_app(Settings(home=tmp_path))
    transport = httpx.ASGITransport(app=app)

    async def check():
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8765") as http:
            health = await http.get("/health")
            assert health.status_code == 503 and health.json()["status"] == "loading"
            chat = await http.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}]})
            assert chat.status_code == 503
            assert chat.json()["error"]["code"] == "model_loading"

    import asyncio

    asyncio.run(check())


def test_default_settings_are_private():
    settings = Settings()
    assert settings.host == "127.0.0.1" and settings.port == 8765


def test_client_disconnect_stops_generation(server):
    before = httpx.get(f"{server.base_url}/health", timeout=10).json()["cancelled_generations"]
    body = {"messages": [{"role": "user", "content": "Repeat the word hello forever: hello hello hello"}],
            "max_tokens": 900, "stream": True, "temperature": 1.0,
            # SmolLM2's <|endoftext|> (0) and <|im_end|> (2) banned: it cannot end by itself.
            "logit_bias": {"0": -100, "2": -100}}
    with httpx.stream("POST", f"{server.base_url}/v1/chat/completions", json=body, timeout=120,
                      headers={"Authorization": f"Bearer {API_KEY}"}) as response:
        for count, _line in enumerate(response.iter_lines()):
            if count >= 4:
                break  # leave after a few chunks: the connection closes here
    deadline = time.monotonic() + 60
    health = {}
    while time.monotonic() < deadline:
        health = httpx.get(f"{server.base_url}/health", timeout=10).json()
        if health["cancelled_generations"] > before and health["requests_in_progress"] == 0:
            break
        time.sleep(0.2)
    assert health["cancelled_generations"] == before + 1
    assert health["requests_in_progress"] == 0
