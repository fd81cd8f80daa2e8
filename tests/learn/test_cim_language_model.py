"""The served model (SmolLM2-135M, dequantized into torch) with its attention and MLP
projections on a simulated chip: the first steps of the CIM engine (issue 12)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cim_backend.config import CIMConfig, ideal_config
from cim_backend.network import calibrate_input_ranges, cim_layers, convert, program_model

pytestmark = pytest.mark.slow

PROJECTIONS = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


def _projections(name: str) -> bool:
    return name.rsplit(".", 1)[-1] in PROJECTIONS


def _first_layers(name: str) -> bool:
    """The projections of the first six of the 30 decoder layers (enough to tell per-tensor
    from per-channel scales at a fifth of the cost of the whole model)."""
    parts = name.split(".")
    return _projections(name) and "layers" in parts and int(parts[parts.index("layers") + 1]) < 6


def _on_chip(model: nn.Module, config: CIMConfig, ids: torch.Tensor, include=_projections) -> nn.Module:
    cim = convert(model, config, include=include)
    calibrate_input_ranges(cim, ids)
    program_model(cim, [0], seed=0)
    return cim


def _last_logits(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(ids).logits[0, -1]


def _kl(logits: torch.Tensor, reference: torch.Tensor) -> float:
    """KL(reference || logits) of the next-token distributions, in nats."""
    return float(F.kl_div(logits.log_softmax(-1), reference.log_softmax(-1), log_target=True, reduction="sum"))


def test_per_channel_scales_keep_4_bit_weights_close_and_variation_moves_the_logits(hf_smollm):
    model, tokenizer = hf_smollm
    ids = tokenizer("The capital of France is", return_tensors="pt").input_ids
    reference = _last_logits(model, ids)
    quiet = {"programming_variation": False, "read_noise": False}
    per_tensor = _kl(_last_logits(_on_chip(model, CIMConfig(**quiet), ids, _first_layers), ids), reference)
    per_channel_chip = _on_chip(model, CIMConfig(**quiet, per_channel_scales=True), ids, _first_layers)
    per_channel = _kl(_last_logits(per_channel_chip, ids), reference)
    # Measured on all 30 layers: ~8.3 nats per tensor (the model is wrecked) against ~0.84 per
    # channel; on the first six layers: ~3.2 against ~0.29.
    assert per_tensor > 4 * per_channel
    noisy = _on_chip(model, CIMConfig(per_channel_scales=True, output_referred_read_noise=True), ids, _first_layers)
    assert _kl(_last_logits(noisy, ids), _last_logits(per_channel_chip, ids)) > 0.1


@pytest.fixture(scope="module")
def cim_engines(hf_smollm, learn_home):
    """The CIM engine on an ideal chip and on a chip with variation but no read noise."""
    import copy

    from assistant.models.catalog import resolve_model
    from assistant.models.cim_engine import CIMEngine

    model, tokenizer = hf_smollm
    resolved = resolve_model("default", learn_home)
    quiet = CIMConfig(per_channel_scales=True, read_noise=False).with_sigma(0.02)
    return {name: CIMEngine(resolved, config, n_ctx=512, n_threads=2, loaded=(copy.deepcopy(model), tokenizer))
            for name, config in (("ideal", ideal_config()), ("quiet", quiet))}


def _run(engine, messages, params, cancel=None):
    from assistant.models.generation import GenerationStats, TextPiece

    events = list(engine.chat(messages, params, cancel))
    assert isinstance(events[-1], GenerationStats) and all(isinstance(e, TextPiece) for e in events[:-1])
    return "".join(e.text for e in events[:-1]), events[-1]


def test_cim_engine_on_an_ideal_chip_streams_the_digital_greedy_answer(cim_engines, hf_smollm):
    from assistant.models.chat_format import ChatMessage
    from assistant.models.generation import SamplingParams

    model, tokenizer = hf_smollm
    engine = cim_engines["ideal"]
    messages = [ChatMessage("user", "What is the capital of France?")]
    params = SamplingParams(max_tokens=16, temperature=0.0, repeat_penalty=1.0)
    text, stats = _run(engine, messages, params)
    prompt = engine.chat_prompt(messages, params)
    with torch.no_grad():
        digital = model.generate(torch.tensor([prompt.tokens]), max_new_tokens=16, do_sample=False)
    expected = tokenizer.decode(digital[0, len(prompt.tokens):], skip_special_tokens=True)
    assert text == expected
    assert "Paris" in text
    assert stats.prompt_tokens == len(prompt.tokens) and 0 < stats.completion_tokens <= 16
    assert engine.describe()["backend"] == "cim" and engine.describe()["chip"]["weights"] > 100_000_000
    layers = [name for name, _ in cim_layers(engine.net)]  # the 210 projections on the chip...
    assert len(layers) == 30 * 7 and all(_projections(name) for name in layers)
    assert type(engine.net.lm_head) is nn.Linear  # ...and the LM head stays digital


def test_cim_engine_sampling_is_seeded_and_stops_as_asked(cim_engines):
    import threading

    from assistant.errors import ContextLengthExceededError, InvalidRequestError
    from assistant.models.chat_format import ChatMessage
    from assistant.models.generation import SamplingParams

    engine = cim_engines["quiet"]
    messages = [ChatMessage("user", "Tell me a short story about a bike.")]
    sampled = SamplingParams(max_tokens=12, temperature=0.9, seed=7)
    first, second = _run(engine, messages, sampled)[0], _run(engine, messages, sampled)[0]
    assert first == second  # same chip, same seed, no read noise: the same text
    assert _run(engine, messages, SamplingParams(max_tokens=12, temperature=0.9, seed=8))[0] != first
    _, stats = _run(engine, messages, SamplingParams(max_tokens=3, temperature=0.0))
    assert stats.finish_reason == "length" and stats.completion_tokens == 3
    cancel = threading.Event()
    cancel.set()
    _, stats = _run(engine, messages, SamplingParams(max_tokens=12, temperature=0.0), cancel)
    assert stats.finish_reason == "cancelled" and stats.completion_tokens == 1
    with pytest.raises(InvalidRequestError):
        engine.chat_prompt(messages, SamplingParams(), use_adapter=True)
    with pytest.raises(ContextLengthExceededError):
        engine.text_prompt("word " * 600, SamplingParams())


def test_cim_engine_benchmark_quick(hf_smollm, tmp_path):
    """The benchmark's quick run, and the report's CIM section renders its JSON."""
    import importlib.util
    import json
    from pathlib import Path

    from benchmarks.report.cim import ENGINE_RESULT, engine_speed

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "cim" / "bench_cim_engine.py"
    spec = importlib.util.spec_from_file_location("bench_cim_engine", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.run(module._parse(["--quick"]), loaded=hf_smollm)
    assert set(result["results"]) == {"digital", "cim", "llama.cpp"}
    assert all(r["decode_tokens_per_s"] > 0 and len(r["samples"]) == 1 for r in result["results"].values())
    (tmp_path / ENGINE_RESULT).write_text(json.dumps(result))
    rows = [line for line in engine_speed(tmp_path).splitlines() if line.startswith("| ")]
    assert [row.split("|")[1].strip() for row in rows[1:]] == list(result["results"])
    assert "n/a" in engine_speed(tmp_path / "elsewhere")


def test_a_programmed_and_calibrated_chip_reloads_bit_identically(hf_smollm, tmp_path, capsys):
    """A 6-bit-ADC chip is programmed and stored (``cim program`` itself runs in
    tests/learn/test_cim_serving.py); TSB calibration by distillation tunes the block's A and b
    only; the record then carries the block, and loading it again gives the very logits of the
    engine that was calibrated; TSB on and off differ; a changed model file is refused."""
    import copy
    import json

    from cim_backend.distill import DistillConfig

    from assistant.commands import cim
    from assistant.errors import InvalidRequestError
    from assistant.learn.cim_corpus import calibration_text
    from assistant.models.catalog import resolve_model, sha256_file
    from assistant.models.cim_chip import ChipRecord, ChipSpec, load_chip_engine, program_chip, save_calibration
    from assistant.models.cim_tsb import calibrate_tsb
    from assistant.settings import Settings

    home = ["--home", str(tmp_path)]
    settings = Settings(home=tmp_path)
    resolved = resolve_model("default", settings)
    model, tokenizer = hf_smollm
    spec = ChipSpec(model=resolved.name, model_sha256=sha256_file(resolved.path), adc_bits=6, sigma_rel=0.05, seed=3)
    record, engine = program_chip(settings, spec, 2, loaded=(copy.deepcopy(model), tokenizer))
    assert ChipRecord.load(settings.layout, "smollm2-135m-instruct") == record
    assert record.spec.seed == 3 and record.weights > 100_000_000 and record.pulses > 0
    assert len(record.input_ranges) == 210 and all(r > 0 for r, _ in record.input_ranges.values())
    assert len(record.adc_ranges) == 210 and all(0 < r <= 1 for r in record.adc_ranges.values())
    torch.rand(1000)  # whatever ran before, measuring again gives this chip's ranges (its seed's)
    engine._set_adc_ranges(None)
    assert engine.measurements().adc_ranges == record.adc_ranges
    before = {k: v.clone() for k, v in engine.net.state_dict().items()}
    text = calibration_text(tokenizer, settings, window=16, train_windows=2, val_windows=1)
    assert text.source == "shipped"
    result = calibrate_tsb(engine, text, DistillConfig(max_steps=2, eval_every=1, lr=0.01), width=64)
    # Chip 3 improves on validation within two steps (seeded; another chip may keep the
    # identity, which best-by-validation then rightly keeps: the block below would be zero).
    assert result.steps == 2 and result.best_step > 0 and result.best_val_kl < result.initial_val_kl
    after = engine.net.state_dict()
    # Every projection now sits inside its TSB site, under ".layer" (the site's own range takes
    # the projection's old "input_range" name).
    renamed = {k: k.replace("_proj.", "_proj.layer.", 1) if "_proj." in k else k for k in before}
    moved = [k for k, v in before.items() if not torch.equal(after[renamed[k]], v)]
    assert not moved, moved[:5]  # no backbone tensor moved
    new = set(after) - set(renamed.values())
    # What is new: the one block (A, b) and each site's DAC range for the block's input.
    assert new and all("block." in k or k.endswith("_proj.input_range") for k in new)
    block = engine.block
    assert float(block.chip_weight.detach().abs().sum()) > 0 and len({id(m.block) for m in engine.net.modules()
                                                                       if hasattr(m, "exact_residual")}) == 1
    save_calibration(settings, record, engine, result.best_val_kl, text.source)

    reloaded, stored = load_chip_engine(settings, "default", 2, loaded=(copy.deepcopy(model), tokenizer))
    assert stored.tsb is not None and reloaded.describe()["tsb"] is True
    tokens = engine.tokenize("The passport is in the grey folder")
    logits = []
    for e in (engine, reloaded):
        torch.manual_seed(0)  # the read noise of this one forward
        logits.append(torch.tensor(e.logits(tokens)))
    assert torch.equal(logits[0], logits[1])
    with reloaded.variant("cim"):
        torch.manual_seed(0)
        assert not torch.equal(torch.tensor(reloaded.logits(tokens)), logits[0])
    assert cim.main(["status", *home]) == 0
    assert "TSB 64x64" in capsys.readouterr().out

    path = ChipRecord.path_for(settings.layout, "smollm2-135m-instruct")
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "spec": {**data["spec"], "model_sha256": "0" * 64}}))
    with pytest.raises(InvalidRequestError, match="changed since its chip was programmed"):
        load_chip_engine(settings, "default", 2, loaded=(copy.deepcopy(model), tokenizer))


def test_cim_eval_measures_digital_chip_and_tsb_on_held_out_text(hf_smollm, tmp_path):
    """A tiny ``cim eval`` (one chip, two steps, short windows): every key of the report, the
    PNG, and the chip worse than digital on held-out text."""
    import json

    from assistant.learn.cim_eval import EvalPlan, plot, run_eval, summarize
    from assistant.settings import Settings

    plan = EvalPlan(sigmas=(0.1,), chips=1, max_steps=2, budget_s=60, eval_windows=1, window=16, train_windows=2,
                    val_windows=1, adc_bits=None, swv_multiples=(100,))
    report = run_eval(Settings(home=tmp_path), "default", plan, 2, loaded=hf_smollm)
    summary = summarize(report)
    keys = {"ppl_digital", "ppl_cim", "ppl_cim_tsb", "recovery", "recovery_ci95", "verified_fraction", "chips", "sigma",
            "mrr_digital", "mrr_cim", "mrr_cim_tsb"}
    assert keys <= set(summary) and summary["chips"] == [1] and summary["sigma"] == [0.1]
    chip = report.chips_run[0]
    assert chip.ce_cim > report.ce_digital + 0.1 and chip.calibration_steps == 2
    assert 0 < summary["verified_fraction"] < 0.001  # the block's width**2 weights of ~106M
    swv = summary["levels"][0]["selective_write_verify"]["100"]
    assert swv["verified_weights"] == 100 * plan.width ** 2 and chip.ce_swv[100] < chip.ce_cim  # verifying helps the chip
    json.dumps(summary)
    plot(summary, tmp_path / "eval.png")
    assert (tmp_path / "eval.png").stat().st_size > 1000


def test_encoder_on_a_chip_is_measured_with_vectors_only(tmp_path):
    """The notes encoder on one chip with its TSB: retrieval scored for digital, chip and
    chip + TSB on a tiny notes set, and the chip's vectors no longer equal the digital ones."""
    import json

    from assistant.learn.cim_encoder import encoder_eval
    from assistant.learn.cim_eval import EvalPlan, summarize

    folder = tmp_path / "set"
    (folder / "notes").mkdir(parents=True)
    notes = {"bike.md": "The blue bike is parked in rack 14 in the basement.",
             "dentist.md": "My dentist is Dr. Raman at the Lindenhof clinic.",
             "garden.md": "The tomatoes grow in the south bed and need water every evening."}
    for name, text in notes.items():
        (folder / "notes" / name).write_text(text)
    questions = [("Where is my bike parked?", "bike.md"), ("Who is my dentist?", "dentist.md"),
                 ("When do the tomatoes need water?", "garden.md")]
    (folder / "questions.jsonl").write_text("".join(json.dumps({"question": q, "file": f}) + "\n" for q, f in questions))
    plan = EvalPlan(adc_bits=None)
    result = encoder_eval(plan.chip_config, (0.1,), 1, 30, 2, tmp_path / "home", max_steps=2, folder=folder)
    assert result["digital"] == {"hit_at_1": 1.0, "mrr": 1.0, "questions": 3}
    chip = result["levels"][0]["chips"][0]
    assert chip["calibration_steps"] == 2
    assert 0 < chip["cim"]["cosine_to_digital"] < 0.9999 and 0 < chip["cim_tsb"]["mrr"] <= 1
    summary = summarize(None, result)
    assert summary["mrr_digital"] == 1.0 and len(summary["mrr_cim_tsb"]) == 1 and summary["ppl_digital"] is None


def test_swv_on_the_committed_chips_is_summarised_beside_their_tsb():
    """``benchmarks/cim/bench_swv_on_eval_chips.py``: the committed run's plan with the three SWV
    budgets, SWV recovery per level from the chips' own CE, and the committed TSB beside it."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "cim" / "bench_swv_on_eval_chips.py"
    spec = importlib.util.spec_from_file_location("bench_swv_on_eval_chips", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    committed = {"plan": {"sigmas": [0.05, 0.1], "chips": 5, "budget_s": 180.0, "adc_bits": 6, "width": 64},
                 "levels": [{"sigma": 0.05, "recovery": 0.46, "recovery_ci95": [0.38, 0.53]}],
                 "per_chip": [{"sigma": 0.05, "seed": 0, "ce_cim": 9.7}]}
    plan = module._plan(committed, quick=False)
    assert plan.swv_multiples == (1, 10, 100) and plan.chips == 5 and plan.sigmas == (0.05, 0.1)
    quick = module._plan(committed, quick=True)
    assert (quick.chips, quick.sigmas, quick.swv_multiples) == (1, (0.05,), (10,))
    rows = {f"0.05/{seed}": {"sigma": 0.05, "seed": seed, "ce_digital": 4.0, "ce_cim": 10.0,
                             "ce_swv": {"1": 10.0, "10": 10.0 - 3 * seed, "100": 7.0}} for seed in range(2)}
    level = module._summary(committed, rows, plan)["levels"][0]
    assert level["chips"] == 2 and level["committed"]["recovery"] == 0.46
    assert level["swv"]["1"]["recovery"] == 0.0 and level["swv"]["100"]["recovery"] == 0.5
    assert level["swv"]["10"]["recovery"] == 0.25 and level["swv"]["10"]["verified_weights"] == 40_960
    assert level["ce_cim_now_vs_committed"] == [[10.0, 9.7]]
