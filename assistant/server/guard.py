"""What keeps a web page the person visits from using their assistant.

A page on any site can make the browser send requests to ``127.0.0.1:8765``. Two checks
stop it: the ``Host`` header (a DNS-rebinding page reaches us under its own name, so when
we listen on loopback only loopback names are served: 403 otherwise), and CORS (browsers
let a page read our answers only if we name its origin: by default only our own)."""
from __future__ import annotations

import ipaddress
import json
import logging
import socket

from assistant.errors import AssistantError
from assistant.settings import Settings

log = logging.getLogger(__name__)

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


class ForbiddenHostError(AssistantError):
    """A request named a host this server does not answer to."""

    status = 403
    code = "forbidden_host"


class InsecureBindError(AssistantError):
    """Listening beyond loopback without an API key: anyone on the network could read the notes."""

    code = "insecure_bind"


def is_loopback(host: str) -> bool:
    """``host`` (an address or a name to listen on) reaches only this machine."""
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(settings: Settings) -> None:
    """Refuse a non-loopback bind without an API key unless ``insecure_no_auth`` says so."""
    if is_loopback(settings.host) or settings.api_key:
        return
    if not settings.insecure_no_auth:
        raise InsecureBindError(
            f"listening on {settings.host} would let anyone on the network read your notes: set an API key "
            "(--api-key or ASSISTANT_API_KEY), or pass --insecure-no-auth if the network is yours alone")
    log.warning("listening on %s WITHOUT an API key (--insecure-no-auth): anyone who can reach this port "
                "can read the indexed notes", settings.host)


def allowed_hosts(settings: Settings) -> set[str]:
    """Host names served when bound to loopback: loopback names, this machine's name, names
    under ``.localhost`` (checked separately), and ``--allowed-hosts``."""
    names = {*LOOPBACK_NAMES, socket.gethostname().lower(), *(h.lower() for h in settings.allowed_hosts)}
    return names


def host_name(header: str) -> str:
    """The name part of a ``Host`` header: ``[::1]:8765`` -> ``::1``, ``Example:80`` -> ``example``."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def own_origins(settings: Settings) -> list[str]:
    """The origins of this server's own page, plus ``--allowed-origins``."""
    port = settings.port
    own = [f"http://{name}:{port}" for name in ("127.0.0.1", "localhost", "[::1]")]
    if not is_loopback(settings.host):
        own.append(f"http://{settings.host}:{port}")
    return own + list(settings.allowed_origins)


class HostGuard:
    """Pure ASGI middleware: when bound to loopback, a request whose ``Host`` is not a
    loopback name (or allowed) gets 403 before any route runs."""

    def __init__(self, app, settings: Settings):
        self.app = app
        self.active = is_loopback(settings.host)
        self.names = allowed_hosts(settings)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not self.active:
            return await self.app(scope, receive, send)
        header = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")
        name = host_name(header)
        if name in self.names or name.endswith(".localhost"):
            return await self.app(scope, receive, send)
        error = ForbiddenHostError(f"host '{name or '(none)'}' is not served here (a DNS-rebinding page?); "
                                   "use 127.0.0.1 or localhost, or --allowed-hosts")
        payload = json.dumps(error.to_openai()).encode()
        await send({"type": "http.response.start", "status": error.status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(payload)).encode())]})
        await send({"type": "http.response.body", "body": payload})
