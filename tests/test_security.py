"""Browser attacks on a loopback server, binding beyond loopback, and bodies over the
limit: the Host check (DNS rebinding), CORS for our own origin only, no LAN without an API
key, and a 413 the client can read."""
from __future__ import annotations

import asyncio
import subprocess
import sys

import httpx
import pytest

from assistant.server import create_app
from assistant.server.guard import InsecureBindError, host_name
from assistant.settings import Settings
from tests.conftest import API_KEY
from tests.helpers import REPO_ROOT

AUTH = {"Authorization": f"Bearer {API_KEY}"}


def asgi_get(app, url: str, headers: dict | None = None, method: str = "GET") -> httpx.Response:
    """One request to the app in-process (no lifespan: the model is not loaded, /health is 503)."""
    async def go():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8765") as http:
            return await http.request(method, url, headers=headers or {})

    return asyncio.run(go())


@pytest.mark.parametrize("header, name", [("127.0.0.1:8765", "127.0.0.1"), ("[::1]:8765", "::1"),
                                          ("Localhost", "localhost"), ("evil.example:80", "evil.example")])
def test_host_name_parsing(header, name):
    assert host_name(header) == name


def test_foreign_host_header_gets_403_loopback_names_pass(server):
    for host in ("evil.example", "evil.example:8765", "192.168.1.20:8765"):
        response = httpx.get(f"{server.base_url}/v1/models", headers={**AUTH, "Host": host}, timeout=10)
        assert response.status_code == 403 and response.json()["error"]["code"] == "forbidden_host", host
    for host in (f"127.0.0.1:{server.port}", f"localhost:{server.port}", "assistant.localhost"):
        response = httpx.get(f"{server.base_url}/v1/models", headers={**AUTH, "Host": host}, timeout=10)
        assert response.status_code == 200, host


def test_allowed_hosts_extend_the_list(tmp_path):
    app = create_app(Settings(home=tmp_path, allowed_hosts="pi.lan"))
    assert asgi_get(app, "/health", {"Host": "pi.lan:8765"}).status_code == 503  # passed the guard: loading
    assert asgi_get(app, "/health", {"Host": "other.lan"}).status_code == 403


def test_cors_allows_only_our_own_origin_by_default(server):
    def preflight(origin):
        return httpx.options(f"{server.base_url}/v1/chat/completions", timeout=10, headers={
            "Origin": origin, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type"})

    own = preflight(f"http://127.0.0.1:{server.port}")
    assert own.headers.get("access-control-allow-origin") == f"http://127.0.0.1:{server.port}"
    foreign = preflight("http://evil.example")
    assert "access-control-allow-origin" not in foreign.headers
    read = httpx.get(f"{server.base_url}/v1/models", headers={**AUTH, "Origin": "http://evil.example"}, timeout=10)
    assert "access-control-allow-origin" not in read.headers  # the page cannot read the answer


def test_allowed_origins_extend_cors(tmp_path):
    app = create_app(Settings(home=tmp_path, allowed_origins="http://notes.localhost:3000"))
    response = asgi_get(app, "/health", {"Origin": "http://notes.localhost:3000"})
    assert response.headers.get("access-control-allow-origin") == "http://notes.localhost:3000"


def test_binding_beyond_loopback_needs_an_api_key(tmp_path):
    with pytest.raises(InsecureBindError, match="API key"):
        create_app(Settings(home=tmp_path, host="0.0.0.0"))
    create_app(Settings(home=tmp_path, host="0.0.0.0", api_key="k"))  # fine with a key
    insecure = create_app(Settings(home=tmp_path, host="0.0.0.0", insecure_no_auth=True))
    health = asgi_get(insecure, "/health", {"Host": "192.168.1.20:8765"})  # no Host check beyond loopback
    assert health.status_code == 503 and "without an API key" in health.json()["warnings"][0]
    cli = subprocess.run([sys.executable, "-m", "assistant.cli", "serve", "--host", "0.0.0.0", "--home",
                          str(tmp_path)], capture_output=True, text=True, timeout=60, cwd=REPO_ROOT)
    assert cli.returncode == 1 and cli.stderr.startswith("error: listening on 0.0.0.0")
    assert len(cli.stderr.strip().splitlines()) == 1


def test_a_body_over_the_limit_gets_a_413_the_client_can_read(server, client):
    big = b'{"messages": [{"role": "user", "content": "' + b"x" * 5_000_000 + b'"}]}'
    response = httpx.post(f"{server.base_url}/v1/chat/completions", content=big, timeout=60,
                          headers={**AUTH, "Content-Type": "application/json"})
    assert response.status_code == 413 and response.json()["error"]["code"] == "payload_too_large"

    def chunks():  # no Content-Length: the limit is counted as the body streams in
        for _ in range(50):
            yield b"x" * 100_000

    streamed = httpx.post(f"{server.base_url}/v1/chat/completions", content=chunks(), timeout=60, headers=AUTH)
    assert streamed.status_code == 413
    assert client.models.list().data  # still serving
