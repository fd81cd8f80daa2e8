"""Checks of what lives under ``$ASSISTANT_HOME`` and of the server: the model file and
its checksum, the knowledge index, adapters, and the port. Nothing here writes."""
from __future__ import annotations

import base64
import importlib.metadata
import json
import socket
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional

from assistant.doctor import FAIL, OK, WARN, CheckResult
from assistant.doctor.system import active_profile
from assistant.errors import AssistantError
from assistant.models.catalog import GEMMA_FILE, _gemma_expected_sha256, find_entry, sha256_file
from assistant.models.gguf_info import read_gguf_info
from assistant.models.memory import estimate_memory
from assistant.settings import Settings

MB = 1024 * 1024


def wheel_record_sha256(path: Path) -> Optional[str]:
    """The hex sha256 that the installing wheel's RECORD lists for ``path`` (a file inside
    an installed package), or None if no installed distribution lists it."""
    site = path.parent.parent
    target = path.resolve()
    for dist in importlib.metadata.distributions(path=[str(site)]):
        for record in dist.files or []:
            if record.hash and record.hash.mode == "sha256" and (site / record).resolve() == target:
                padded = record.hash.value + "=" * (-len(record.hash.value) % 4)
                return base64.urlsafe_b64decode(padded).hex()
    return None


def _expected_sha256(source: str, path: Path) -> tuple[Optional[str], str]:
    """(reference digest, where it comes from) for a catalog model's file."""
    if source == "embedded":
        return wheel_record_sha256(path), "the wheel's RECORD"
    if source == "assembled":
        return _gemma_expected_sha256(), "the chunk package's SHA256SUMS"
    return None, "no reference (a pulled or local file)"


def check_model(settings: Settings) -> CheckResult:
    """The served model's file is there, matches its checksum, and fits the profile."""
    try:
        entry = find_entry(settings.model, settings)
        if entry.source == "assembled":  # entry.path() would assemble it: the doctor only looks
            path = settings.layout.models / GEMMA_FILE
            if not path.is_file():
                return CheckResult("model", WARN, f"{entry.name} is not assembled yet: its first use joins it "
                                                  f"into {path}")
        else:
            path = entry.path(settings)
        expected, reference = _expected_sha256(entry.source, path)
        info = read_gguf_info(path)
    except AssistantError as exc:
        return CheckResult("model", FAIL, exc.message)
    actual = sha256_file(path)
    details = {"model": entry.name, "path": str(path), "size_mb": round(path.stat().st_size / MB, 1),
               "sha256": actual, "reference": reference}
    if expected is not None and actual != expected:
        return CheckResult("model", FAIL, f"{path.name}: sha256 {actual[:12]}... does not match {reference} "
                                          f"({expected[:12]}...): reinstall the model", details)
    checksum = f"sha256 matches {reference}" if expected else f"sha256 {actual[:12]}... ({reference})"
    try:
        profile = active_profile(settings)[0]
    except AssistantError:
        return CheckResult("model", OK, f"{entry.name}: {path.name}, {checksum}", details)
    n_ctx = min(settings.n_ctx or profile.max_context, info.context_length)
    need_mb = estimate_memory(info, n_ctx).total_mb
    details.update(n_ctx=n_ctx, needs_mb=round(need_mb), ram_budget_mb=profile.ram_budget_mb)
    fit = f"needs ~{need_mb:.0f} MB at context {n_ctx}, budget {profile.ram_budget_mb} MB"
    if need_mb > profile.ram_budget_mb:
        return CheckResult("model", FAIL, f"{entry.name} {fit}: the server will refuse it; choose a smaller "
                                          "model or context", details)
    return CheckResult("model", OK, f"{entry.name}: {checksum}; {fit}", details)


def check_index(settings: Settings) -> CheckResult:
    """The knowledge index, if any, opens read-only, passes SQLite's quick check, and has
    its committed vector file."""
    from assistant.knowledge.health import index_health  # numpy and SQLite only for this check

    health = index_health(settings)
    database = health.database
    details: dict = {"path": str(database)}
    if not health.exists:
        return CheckResult("index", OK, "none yet: 'assistant personalize PATH' builds it", details)
    if health.open_error is not None:
        return CheckResult("index", FAIL, f"{database} does not open: {health.open_error}", details)
    if health.integrity != "ok":
        return CheckResult("index", FAIL, f"{database} is damaged ({health.integrity}): run 'assistant personalize' "
                                          "again after removing it", details)
    if health.schema_problem:
        return CheckResult("index", FAIL, health.schema_problem, details)
    details.update(chunks=health.chunks, sources=health.sources, encoder=health.encoder,
                   vector_file=health.vector_file)
    summary = f"{health.sources} source(s), {health.chunks} chunks, encoder {health.encoder or 'unknown'}"
    if not health.vector_file_present:
        return CheckResult("index", WARN, f"{summary}; vector file {health.vector_file} is missing: the server "
                                          "rebuilds it from SQLite at each start until 'assistant personalize' runs",
                           details)
    return CheckResult("index", OK, summary, details)


def check_adapters(settings: Settings) -> CheckResult:
    """Every adapter file under ``$ASSISTANT_HOME/adapters`` is a GGUF LoRA adapter, and the
    active one exists."""
    folder, marker = settings.layout.adapters, settings.layout.active_adapter_marker
    files = sorted(folder.glob("*.gguf")) if folder.is_dir() else []
    active = _active_adapter(marker)
    if not files and not active:
        return CheckResult("adapters", OK, "none", {"path": str(folder)})
    problems = []
    for path in files:
        try:
            kind = read_gguf_info(path).metadata.get("general.type")
        except Exception as exc:  # a truncated or foreign file
            problems.append(f"{path.name} is unreadable ({exc})")
            continue
        if kind != "adapter":
            problems.append(f"{path.name} is not an adapter (general.type={kind})")
    if active and not (folder / f"{active}.gguf").is_file():
        problems.append(f"{marker.name} names '{active}', which has no file")
    details = {"path": str(folder), "adapters": [p.stem for p in files], "active": active, "problems": problems}
    if problems:
        return CheckResult("adapters", FAIL, "; ".join(problems), details)
    return CheckResult("adapters", OK, f"{len(files)}: {', '.join(p.stem for p in files)}; active: {active or 'none'}",
                       details)


def _active_adapter(marker: Path) -> Optional[str]:
    """The name the marker file says is active, without checking that its file exists."""
    try:
        return json.loads(marker.read_text()).get("active")
    except (OSError, ValueError, AttributeError):
        return None


def _health(base_url: str) -> tuple[Optional[int], dict]:
    """(HTTP status, JSON body) of ``/health``; status None if the answer is not HTTP."""
    try:
        with urllib.request.urlopen(f"{base_url}/health", timeout=5) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.load(exc)
        except ValueError:
            return exc.code, {}
    except (OSError, ValueError):
        return None, {}


def check_port(settings: Settings) -> CheckResult:
    """The configured port is free (``assistant serve`` can listen) or an assistant serves on it."""
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "", "::") else settings.host
    address = f"{host}:{settings.port}"
    details = {"address": address}
    try:
        with socket.create_connection((host, settings.port), timeout=2):
            pass
    except OSError:
        try:
            with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
                sock.bind((host, settings.port))
        except OSError as exc:
            return CheckResult("port", FAIL, f"cannot listen on {address}: {exc.strerror or exc}", details)
        return CheckResult("port", OK, f"{address} is free: 'assistant serve' can listen there", details)
    status, body = _health(f"http://{address}")
    details.update(http_status=status, health=body)
    if status == 200 and body.get("status") == "ok":
        model = body.get("model", {}).get("id", "?")
        return CheckResult("port", OK, f"an assistant serves on {address}: profile {body.get('profile')}, "
                                       f"model {model}", details)
    if status == 503 and body.get("status") == "loading":
        return CheckResult("port", WARN, f"an assistant on {address} is still loading its model", details)
    if status == 503 and body.get("status") == "error":
        return CheckResult("port", FAIL, f"the assistant on {address} failed to load: {body.get('error')}", details)
    what = f"HTTP {status} on /health" if status else "not HTTP"
    return CheckResult("port", FAIL, f"{address} is taken by another program ({what})", details)
