"""The exported GGUF adapter computes what torch + LoRA computes."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from assistant.learn.errors import AdapterMismatchError
from assistant.learn.export import AdapterMetadata, permute_rows, write_adapter
from assistant.learn.train import TrainConfig, add_lora, lora_state
from assistant.models.catalog import resolve_model, sha256_file
from assistant.models.engine import Engine

pytestmark = pytest.mark.slow  # long: skipped by `make test-fast`, run by `make test`

PROMPTS = ["Where do I park the bike?", "The compost bin is turned every", "Grandma Rosa likes"]


def _meta(model, config, name="parity"):
    return AdapterMetadata(name=name, base_model=model.name, base_sha256=sha256_file(model.path), rank=config.rank,
                           alpha=config.alpha, target_modules=config.target_modules, created=0.0,
                           data_snapshot="test", val_loss=0.0, initial_val_loss=0.0, train_seconds=0.0,
                           budget_s=0.0, steps=0)


@pytest.fixture(scope="module")
def random_adapter(learn_home, hf_smollm, tmp_path_factory):
    """A LoRA whose B is random (peft starts it at zero), so it changes the logits clearly."""
    model, tokenizer = hf_smollm
    config = TrainConfig(rank=8, alpha=16, target_modules=("q_proj", "k_proj", "v_proj", "o_proj"))
    torch.manual_seed(0)  # peft initialises lora_A from the global generator
    peft_model = add_lora(model, config)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.1)
    peft_model.eval()
    resolved = resolve_model("default", learn_home)
    path = tmp_path_factory.mktemp("adapters") / "parity.gguf"
    write_adapter(path, lora_state(peft_model), resolved.info, _meta(resolved, config))
    ids = [tokenizer(p, add_special_tokens=False).input_ids for p in PROMPTS]
    with torch.no_grad():
        torch_lora = [peft_model(torch.tensor([x])).logits[0, -1].numpy() for x in ids]
        with peft_model.disable_adapter():
            torch_base = [peft_model(torch.tensor([x])).logits[0, -1].numpy() for x in ids]
    peft_model.unload()  # leave the shared base model as it was
    return path, ids, torch_lora, torch_base


def corr(a, b) -> float:
    return float(np.corrcoef(np.asarray(a), np.asarray(b))[0, 1])


def test_llama_cpp_adapter_matches_torch_lora(learn_home, random_adapter):
    path, ids, torch_lora, torch_base = random_adapter
    engine = Engine(resolve_model("default", learn_home), n_ctx=256, n_threads=2)
    engine.load_adapter(path)
    for tokens, expected_lora, expected_base in zip(ids, torch_lora, torch_base):
        cpp_lora = engine.logits(tokens, use_adapter=True)
        cpp_base = engine.logits(tokens, use_adapter=False)
        assert corr(cpp_lora, expected_lora) >= 0.99
        assert corr(cpp_base, expected_base) >= 0.99
        # The adapter clearly moves the logits: llama.cpp+adapter is far nearer torch+LoRA
        # than the base model is.
        lora_gap = np.linalg.norm(np.asarray(cpp_lora) - expected_lora)
        base_gap = np.linalg.norm(np.asarray(cpp_base) - expected_lora)
        assert base_gap > 2 * lora_gap


def test_switching_changes_output_and_reloads_nothing(learn_home, random_adapter):
    from assistant.models.chat_format import ChatMessage
    from assistant.models.generation import SamplingParams, TextPiece

    path, *_ = random_adapter
    engine = Engine(resolve_model("default", learn_home), n_ctx=256, n_threads=2)
    engine.load_adapter(path)
    model_pointer, context_pointer = engine._llm.model, engine._llm.ctx
    params = SamplingParams(max_tokens=12, temperature=0.0)

    def answer(use_adapter: bool) -> str:
        prompt = engine.chat_prompt([ChatMessage("user", "Where do I park the bike?")], params, use_adapter)
        return "".join(e.text for e in engine.generate(prompt) if isinstance(e, TextPiece))

    off, on, off_again = answer(False), answer(True), answer(False)
    assert on != off
    assert off_again == off
    assert engine.adapter_switches == 3  # unknown -> off, off -> on, on -> off
    assert engine._llm.model is model_pointer and engine._llm.ctx is context_pointer
    assert engine.last_switch_s < 0.5


def test_adapter_for_another_base_is_refused(learn_home, random_adapter):
    path, *_ = random_adapter
    gemma = Engine(resolve_model("gemma3-270m", learn_home), n_ctx=128, n_threads=2)
    with pytest.raises(AdapterMismatchError, match="trained for base model smollm2-135m-instruct"):
        gemma.load_adapter(path)
    assert gemma.adapter is None


def test_qk_permutation_is_the_llama_cpp_row_order():
    rows = np.arange(8 * 3).reshape(8, 3)  # 2 heads of 4 rows
    permuted = permute_rows(rows, n_head=2)
    # Within each head, rows (0,1,2,3) -> even rows first, then odd: (0,2,1,3).
    assert permuted[:, 0].tolist() == [0, 6, 3, 9, 12, 18, 15, 21]
