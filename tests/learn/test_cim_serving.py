"""``backend: "cim"`` over HTTP: a server started with ``--backend cim`` answers on the stored
chip through the official ``openai`` client, streaming and not, with the plan saying ``cim`` and
the response carrying the chip's cost; without a programmed chip, a clear 400; and
``assistant cim compare``."""
from __future__ import annotations

import gc
import json

import openai
import pytest

from tests.helpers import SAMPLE_NOTES, ServerProcess, index_notes

pytestmark = pytest.mark.slow

QUESTION = [{"role": "user", "content": "Where is the blue bike parked?"}]
CIM_KEYS = {"energy_uj", "latency_ms", "cpu_energy_uj_estimate", "tokens", "chip_seed", "tsb",
            "simulation_tokens_per_s", "adc_bits", "weight_bits"}


def _client(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0, timeout=300)


def test_backend_cim_over_http(tmp_path, capsys):
    from assistant.commands import cim
    from assistant.errors import InvalidRequestError
    from assistant.models.chat_format import ChatMessage
    from assistant.models.cim_chip import ChipRecord
    from assistant.models.generation import SamplingParams
    from assistant.orchestrator import Assistant, AskRequest
    from assistant.router.plan import Backend
    from assistant.settings import Settings

    (tmp_path / "notes").mkdir()
    index_notes(tmp_path, tmp_path / "notes", SAMPLE_NOTES)
    # Started with the cim backend but no chip programmed: cim is refused, saying what to run
    # (over HTTP that is a 400, as tests/test_server_errors.py shows for its sibling), cpu serves.
    assistant = Assistant.load(Settings(home=tmp_path, backend="cim"))
    messages = [ChatMessage(**QUESTION[0])]
    assert assistant.cim is None
    with pytest.raises(InvalidRequestError, match="assistant cim program") as refused:
        assistant.answer(AskRequest(messages, backend=Backend.CIM, sampling=SamplingParams(max_tokens=4)))
    assert refused.value.status == 400
    cpu = assistant.answer(AskRequest(messages, sampling=SamplingParams(max_tokens=4)))
    assert cpu.plan.backend == Backend.CPU and cpu.stats.cim is None
    del assistant

    # `assistant cim program` (an ideal ADC: this test is about the path, not the chip's
    # quality) stores the chip; `status` shows it, and said before to program one.
    home = ["--home", str(tmp_path)]
    assert cim.main(["status", *home]) == 1
    assert "run 'assistant cim program' first" in capsys.readouterr().err
    assert cim.main(["program", "--adc-bits", "ideal", "--seed", "2", "--n-threads", "2", *home]) == 0
    shown = capsys.readouterr().out
    assert "seed 2" in shown and "write-verified" in shown and "uJ" in shown and "no TSB" in shown
    record = ChipRecord.load(Settings(home=tmp_path).layout, "smollm2-135m-instruct")
    assert record is not None and record.spec.seed == 2 and record.spec.adc_bits is None
    assert record.weights > 100_000_000 and record.pulses > 0 and record.adc_ranges == {}
    assert len(record.input_ranges) == 210 and all(r > 0 for r, _ in record.input_ranges.values())
    assert cim.main(["status", "--json", *home]) == 0
    assert json.loads(capsys.readouterr().out)["spec"]["sigma_rel"] == 0.02
    # The chips earlier tests made (5 GB each) may wait for the cycle collector; the server's
    # memory guard counts the RAM free now, so give it back first.
    gc.collect()

    server = ServerProcess(tmp_path, "--backend", "cim")
    try:
        health = server.wait_ready(240)
        assert health["cim"] is not None, server.log_path.read_text()[-2000:]
        assert health["cim"]["backend"] == "cim" and health["cim"]["chip"]["seed"] == 2
        client = _client(server)
        answer = client.chat.completions.create(model="default", messages=QUESTION, temperature=0,
                                                extra_body={"backend": "cim", "strategy": "rag"})
        assert answer.plan["backend"] == "cim" and answer.plan["strategy"] == "rag"
        assert any(s["path"].endswith("bike.md") for s in answer.sources)
        assert 0 < answer.usage.completion_tokens <= 32  # max_tokens defaults to 32 on the chip
        cost = answer.cim
        assert set(cost) == CIM_KEYS and cost["chip_seed"] == 2 and cost["tsb"] is False
        assert cost["tokens"] == answer.usage.total_tokens and cost["energy_uj"] > 0 and cost["latency_ms"] > 0
        assert cost["cpu_energy_uj_estimate"] > cost["energy_uj"]

        stream = client.chat.completions.create(model="default", messages=QUESTION, max_tokens=4, stream=True,
                                                extra_body={"backend": "cim", "strategy": "base"})
        chunks = list(stream)
        assert chunks[0].plan["backend"] == "cim"
        last = chunks[-1]
        assert last.choices[0].finish_reason in ("length", "stop") and set(last.cim) == CIM_KEYS
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finally:
        server.stop()

    # `assistant cim compare`: the same question digitally and on the chip (no TSB calibrated
    # here, so two answers), through Assistant.ask, with the chip's cost on the chip's answer.
    gc.collect()
    assert cim.main(["compare", "Where is the blue bike parked?", "--strategy", "rag", "--max-tokens", "6",
                     "--json", "--home", str(tmp_path)]) == 0
    shown = json.loads(capsys.readouterr().out)
    rows = {row["variant"]: row for row in shown["answers"]}
    assert set(rows) == {"digital", "cim"} and shown["chip_seed"] == 2
    assert all(row["answer"] and any(p.endswith("bike.md") for p in row["sources"]) for row in rows.values())
    assert rows["digital"]["energy_uj"] is None and rows["cim"]["energy_uj"] > 0
