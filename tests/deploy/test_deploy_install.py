"""A real install.sh run on this (x86) machine into a temporary prefix, with
``--no-service`` and the test-only ``--allow-unsupported-platform``: it installs, starts
the installed server once and gets a healthy /health. Then: a second run changes nothing,
the installed program serves on its own and passes ``assistant doctor``, the rendered unit
verifies, and uninstall keeps the data unless --purge. The tests run in file order."""
from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from assistant.profiles import load_profile
from deploy_helpers import REPO_ROOT, run_install, systemd_analyze_path, verify_unit
from tests.helpers import free_port

pytestmark = pytest.mark.slow

# what install.sh packages, plus the script itself (a frozen copy: the tree may change meanwhile)
SNAPSHOT = ["pyproject.toml", "README.md", "constraints.txt", "assistant", "cim_backend", "profiles",
            "deploy/raspberry-pi", "deploy/build-llama.sh"]


@pytest.fixture(scope="module")
def install(tmp_path_factory):
    """The first real install; yields its paths and output."""
    base = tmp_path_factory.mktemp("pi-install")
    repo = base / "repo"
    for name in SNAPSHOT:
        source, target = REPO_ROOT / name, repo / name
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    paths = {"repo": repo, "prefix": base / "opt", "data": base / "data", "etc": base / "etc",
             "port": free_port()}
    paths["args"] = ["--prefix", str(paths["prefix"]), "--data-dir", str(paths["data"]), "--config-dir",
                     str(paths["etc"]), "--port", str(paths["port"]), "--no-service",
                     "--allow-unsupported-platform"]
    paths["script"] = repo / "deploy" / "raspberry-pi" / "install.sh"
    started = time.monotonic()
    result = run_install(*paths["args"], script=paths["script"])
    paths["seconds"] = time.monotonic() - started
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    paths["output"] = result.stdout
    return paths


def read_env_file(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if line and not line.startswith("#"))


def test_install_gets_a_healthy_server(install):
    out = install["output"]
    assert f"healthy: http://127.0.0.1:{install['port']}/health" in out
    config = read_env_file(install["etc"] / "assistant.env")
    assert config == {"ASSISTANT_HOME": str(install["data"]), "ASSISTANT_PROFILE": config["ASSISTANT_PROFILE"],
                      "ASSISTANT_HOST": "127.0.0.1", "ASSISTANT_PORT": str(install["port"])}
    assert f"-> profile {config['ASSISTANT_PROFILE']}, model smollm2-135m-instruct" in out
    # --no-service: no user, no unit under /etc, no systemctl
    assert "systemctl" not in out and "useradd" not in out
    venv = install["prefix"] / "venv"
    assert (venv / "bin" / "assistant").is_file()
    assert not list(venv.glob("lib/python*/site-packages/torch")), "serving must not install torch"


def test_second_run_changes_nothing_and_says_so(install):
    before = {p: p.stat().st_mtime_ns for p in install["prefix"].rglob("*") if p.is_file()}
    result = run_install(*install["args"], script=install["script"])
    assert result.returncode == 0, result.stderr
    assert "Nothing changed: everything was already in place." in result.stdout
    assert "    + " not in result.stdout  # no action line
    assert "healthy:" in result.stdout
    after = {p: p.stat().st_mtime_ns for p in install["prefix"].rglob("*") if p.is_file()}
    assert after == before


def test_installed_program_finds_profiles_outside_the_repo(install):
    listed = subprocess.run([str(install["prefix"] / "venv" / "bin" / "assistant"), "profile", "--list"],
                            capture_output=True, text=True, cwd="/", timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert "raspberry-pi-5-8gb" in listed.stdout.split()


def test_installed_server_serves_and_passes_doctor(install):
    venv_bin = install["prefix"] / "venv" / "bin"
    env_file = install["etc"] / "assistant.env"
    config = read_env_file(env_file)
    log = (install["data"] / "test-serve.log").open("wb")
    server = subprocess.Popen([str(venv_bin / "assistant"), "serve", "--log-level", "warning"], cwd="/",
                              env={"PATH": "/usr/bin:/bin", **config}, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{install['port']}/health"
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, (install["data"] / "test-serve.log").read_text()
            try:
                health = httpx.get(url, timeout=2)
                if health.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "server not ready"
            time.sleep(0.3)
        assert health.json()["profile"] == config["ASSISTANT_PROFILE"]
        doctor = subprocess.run([str(venv_bin / "assistant"), "doctor", "--json", "--env-file", str(env_file)],
                                capture_output=True, text=True, cwd="/", timeout=120, env={"PATH": "/usr/bin:/bin"})
        report = json.loads(doctor.stdout)
        checks = {check["name"]: check for check in report["checks"]}
        assert checks["port"]["status"] == "ok" and "an assistant serves on" in checks["port"]["summary"]
        assert checks["model"]["status"] == "ok" and "sha256 matches the wheel's RECORD" in checks["model"]["summary"]
        assert checks["profile"]["details"]["profile"] == config["ASSISTANT_PROFILE"]
        assert checks["index"]["status"] == "ok" and checks["adapters"]["summary"] == "none"
        assert doctor.returncode == (0 if report["ok"] else 1)
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


@pytest.mark.skipif(systemd_analyze_path() is None, reason="systemd-analyze missing: apt-get install -y systemd")
def test_rendered_unit_verifies_with_the_install_paths(install):
    unit = install["prefix"] / "share" / "assistant.service"
    text = unit.read_text()
    assert f"ExecStart={install['prefix']}/venv/bin/assistant serve --host 127.0.0.1" in text
    assert f"ReadWritePaths={install['data']}" in text
    assert f"EnvironmentFile={install['etc']}/assistant.env" in text
    budget = load_profile(read_env_file(install["etc"] / "assistant.env")["ASSISTANT_PROFILE"]).ram_budget_mb
    assert f"MemoryHigh={budget}M\n" in text and f"MemoryMax={budget * 5 // 4}M\n" in text
    result = verify_unit(unit)
    assert result.returncode == 0 and result.stderr.strip() == "", result.stderr


def test_uninstall_keeps_data_unless_purge(install):
    (install["data"] / "notes-index-stand-in").write_text("user data")
    removed = run_install("--uninstall", *install["args"], script=install["script"])
    assert removed.returncode == 0, removed.stderr
    assert not install["prefix"].exists()
    assert (install["data"] / "notes-index-stand-in").is_file() and (install["etc"] / "assistant.env").is_file()
    again = run_install("--uninstall", *install["args"], script=install["script"])
    assert "Nothing changed" in again.stdout
    purged = run_install("--uninstall", "--purge", *install["args"], script=install["script"])
    assert purged.returncode == 0, purged.stderr
    assert not install["data"].exists() and not install["etc"].exists()


def test_install_took_a_reasonable_time(install):
    # the llama-cpp-python wheel `make` built for this CPU (same flags, same key) is reused
    assert "llama-cpp-python" in install["output"] and "compiling" not in install["output"]
    assert install["seconds"] < 240, f"install took {install['seconds']:.0f} s"
