"""Generation is right on this CPU, whatever its kernels (AVX-512, AMX, NEON).

llama.cpp picks its matrix kernels by the CPU it was built on; its AMX path segfaults on
Q4_1 and is reported to give wrong results for Q4_0/Q4_1. Each model and quantization the
project uses generates in a subprocess (a crash is a failing test naming the CPU, not a
dead test run), and its greedy tokens must equal a reference load of the same model
without llama.cpp's extra buffer types (no repacking, no AMX)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from assistant.doctor import FAIL, OK
from assistant.doctor.system import amx_verdict
from assistant.models.build_info import (amx_guard_needed, cpu_flags, cpu_has_amx, llama_build_features,
                                         parse_system_info)
from tests.helpers import REPO_ROOT

GREEDY_TOKENS = 16
PROMPT = ("My notes say the bike was parked near the library on Tuesday, and that the rent is due on the "
          "first of the month. Tell me a short story about the bike.")

# What the subprocess runs: load one model (requantized when asked) and generate greedily;
# then walk a token path (the reference's, or its own greedy one) and report at each step
# the logits' top token, the path token's logit gap to it, and the logits themselves.
SCRIPT = r"""
import json, sys
import numpy as np
from assistant.settings import Settings
from assistant.models.catalog import resolve_model, ResolvedModel
from assistant.models.chat_format import ChatMessage
from assistant.models.engine import Engine
from assistant.models.generation import SamplingParams, TextPiece
from assistant.models.gguf_info import read_gguf_info
from assistant.models.quantize import quantized_variant

name, quantization, extra, prompt, n = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
path = json.loads(sys.argv[6]) if len(sys.argv) > 6 else None
settings = Settings()
model = resolve_model(name, settings)
if quantization != "shipped":
    file = quantized_variant(model, quantization, settings.layout.model_variants)
    model = ResolvedModel(name=f"{name}.{quantization}", path=file, info=read_gguf_info(file))
engine = Engine(model, n_ctx=256, n_threads=2, extra_buffers={"on": True, "off": False, "auto": None}[extra])
prompt = engine.chat_prompt([ChatMessage("user", prompt)], SamplingParams(max_tokens=n, temperature=0.0, seed=0))
events = list(engine.generate(prompt))
steps, tokens = [], list(prompt.tokens)
for i in range(n):
    logits = np.array(engine.logits(tokens))
    top = int(logits.argmax())
    token = path[i] if path else top
    steps.append({"top": top, "token": token, "gap": float(logits[top] - logits[token]), "logits": logits.tolist()})
    tokens.append(token)
print(json.dumps({"text": "".join(e.text for e in events if isinstance(e, TextPiece)),
                  "tokens": events[-1].completion_tokens, "extra_buffers": engine.extra_buffers, "steps": steps}))
"""

# Rounding differs between llama.cpp's repacked kernels and the plain ones (seen here for
# Q4_K_M: top logits 0.05 apart, correlation 0.9995), so greedy text may part at a near
# tie. A wrong kernel is not a near tie: every step of the reference's path must be the
# served model's top token or within this many logits of it, with correlated logits.
NEAR_TIE_LOGITS = 1.0
MIN_LOGIT_CORRELATION = 0.99
# llama.cpp has no repacked Q4_1 kernel: with the AMX path out, the served load runs the
# reference's kernels, so the text must match to the letter
SAME_KERNELS = {("smollm2-135m-instruct", "shipped")}

MODELS = [("smollm2-135m-instruct", "shipped"),  # Q4_1, the crashing case
          ("smollm2-135m-instruct", "Q4_0"),  # the study's requantized variant
          ("gemma3-270m", "shipped")]  # Q4_K_M


def cpu_summary() -> str:
    """The CPU's name and its SIMD features, for a failure message."""
    flags = cpu_flags()
    text = Path("/proc/cpuinfo").read_text(errors="replace") if Path("/proc/cpuinfo").exists() else ""
    name = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "?")
    simd = sorted(f for f in flags if f.startswith(("avx", "amx", "asimd", "sve", "fma")))
    return f"{name}; flags: {' '.join(simd)}"


def generate(home: Path, name: str, quantization: str, extra: str, path: list[int] | None = None) -> dict:
    """Run SCRIPT in a subprocess; a crash fails with the CPU named."""
    args = [name, quantization, extra, PROMPT, str(GREEDY_TOKENS)] + ([json.dumps(path)] if path else [])
    out = subprocess.run([sys.executable, "-c", SCRIPT, *args],
                         capture_output=True, text=True, timeout=240, cwd=REPO_ROOT,
                         env={**__import__("os").environ, "ASSISTANT_HOME": str(home)})
    assert out.returncode == 0, (f"generation with {name} ({quantization}, extra buffers {extra}) failed with "
                                 f"exit {out.returncode} on this CPU ({cpu_summary()}): {out.stderr[-1500:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def models_home(tmp_path_factory):
    """One data dir for the module: Gemma is assembled and Q4_0 made once."""
    return tmp_path_factory.mktemp("kernels-home")


@pytest.mark.slow
@pytest.mark.parametrize("name, quantization", MODELS)
def test_greedy_tokens_match_a_load_without_extra_buffers(models_home, name, quantization):
    reference = generate(models_home, name, quantization, "off")
    assert reference["extra_buffers"] is False
    path = [step["token"] for step in reference["steps"]]
    served = generate(models_home, name, quantization, "auto", path)
    assert served["tokens"] > 0 and reference["tokens"] > 0
    where = f"{name} ({quantization}) on this CPU ({cpu_summary()})"
    for i, (mine, ref) in enumerate(zip(served["steps"], reference["steps"])):
        correlation = float(np.corrcoef(mine["logits"], ref["logits"])[0, 1])
        assert correlation >= MIN_LOGIT_CORRELATION, f"{where}: logits correlate at {correlation:.4f} at step {i}"
        assert mine["gap"] <= NEAR_TIE_LOGITS, (
            f"{where}: step {i} chose token {mine['top']}, the reference {ref['token']} is {mine['gap']:.2f} "
            "logits behind: not a rounding difference")
    if (name, quantization) in SAME_KERNELS or not served["extra_buffers"]:
        assert served["text"] == reference["text"], f"{where}: generates differently from the reference"


def test_extra_buffers_off_really_reaches_llama_cpp(models_home):
    """The loader's switch changes what llama.cpp does: the repacked weight buffer (which
    this build uses for Q4_0 on x86 and ARM) appears only with extra buffers on."""
    script = ("import sys; from assistant.settings import Settings; from assistant.models.catalog import resolve_model;"
              "from assistant.models.quantize import quantized_variant; from assistant.models.llama_loader import load_llama;"
              "m = resolve_model('smollm2-135m-instruct', Settings());"
              "p = quantized_variant(m, 'Q4_0', Settings().layout.model_variants);"
              "load_llama(sys.argv[1] == 'on', model_path=str(p), n_ctx=64, verbose=True)")
    logs = {}
    for mode in ("on", "off"):
        out = subprocess.run([sys.executable, "-c", script, mode], capture_output=True, text=True, timeout=240,
                             cwd=REPO_ROOT, env={**__import__("os").environ, "ASSISTANT_HOME": str(models_home)})
        assert out.returncode == 0, out.stderr[-1500:]
        logs[mode] = out.stderr
    buffer = "CPU_REPACK model buffer size"  # llama.cpp's load log names each weight buffer type
    assert buffer in logs["on"], "this build repacks no weights: the check below would prove nothing"
    assert buffer not in logs["off"] and "AMX model buffer" not in logs["off"]


def test_the_amx_path_is_not_in_use_on_a_cpu_that_has_amx():
    """On a CPU with AMX tiles, the build leaves the AMX path out (deploy/build-llama.sh),
    or else the engine loads without extra buffers."""
    flags, build = cpu_flags(), llama_build_features()
    if not cpu_has_amx(flags):
        assert not amx_guard_needed(flags, build)
        pytest.skip(f"this CPU has no AMX ({cpu_summary()}); the AMX safety is checked on fixtures below")
    assert not build.get("AMX_INT8"), "llama.cpp was built with its AMX path: rebuild with deploy/build-llama.sh"


AMX_BUILD = "CPU : SSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | AVX512 = 1 | AVX512_VNNI = 1 | AMX_INT8 = 1 | REPACK = 1 |"
SAFE_BUILD = "CPU : SSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | AVX512 = 1 | AVX512_VNNI = 1 | REPACK = 1 |"
SAPPHIRE_RAPIDS = {"fpu", "sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512_vnni", "avx512_bf16",
                   "amx_bf16", "amx_tile", "amx_int8"}
ZEN4 = {"fpu", "sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512_vnni", "avx512_bf16"}


@pytest.mark.parametrize("flags, build, guard, status, words", [
    (SAPPHIRE_RAPIDS, AMX_BUILD, True, FAIL, "built with its AMX path"),
    (SAPPHIRE_RAPIDS, SAFE_BUILD, False, OK, "leaves llama.cpp's AMX path out"),
    (ZEN4, SAFE_BUILD, False, OK, "no AMX"),
    (ZEN4, AMX_BUILD, False, OK, "no AMX"),  # a build made elsewhere; this CPU never takes the path
])
def test_amx_guard_and_doctor_verdict(flags, build, guard, status, words):
    parsed = parse_system_info(build)
    assert amx_guard_needed(flags, parsed) is guard
    verdict, explanation = amx_verdict(flags, parsed)
    assert verdict == status and words in explanation
