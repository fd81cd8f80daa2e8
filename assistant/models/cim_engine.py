"""The simulated NVCIM engine: the served GGUF dequantized into torch, its attention and MLP
projections (q, k, v, o, gate, up, down) on one simulated chip, everything else digital
(embeddings, norms, attention's softmax and the LM head, as in the plan of issue 12).

Same generation API as the llama.cpp :class:`~assistant.models.engine.Engine`: ``chat``,
``chat_prompt``/``text_prompt``, ``generate`` (streaming ``TextPiece`` records, then
``GenerationStats``), ``tokenize``, ``logits``, ``describe``. Decoding keeps transformers' KV
cache, so each new token runs the chip once per projection. Imports torch and transformers:
only a server or command that asked for the CIM backend loads it.
"""
from __future__ import annotations

import random
import threading
from dataclasses import replace
from typing import Iterator, Optional

from assistant.errors import ContextLengthExceededError, InvalidRequestError
from assistant.models.catalog import ResolvedModel
from assistant.models.chat_format import ChatFormat, chat_format_for
from assistant.models.engine_api import GenerationEngine, Prompt
from assistant.models.event_stream import stream_events
from assistant.models.generation import GenerationEvent, SamplingParams
from assistant.models.torch_sampling import pick_token

PROJECTIONS = frozenset({"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"})
# Text the DAC ranges are set on when the caller gives none (a digital forward, no labels).
DEFAULT_RANGE_TEXT = (
    "The quick brown fox jumps over the lazy dog. My notes say the night train leaves at 22:40 "
    "from platform 7, and the dentist calls every six months. What is 17 times 3? It is 51."
)


def is_projection(name: str) -> bool:
    """True for the layers that go onto the chip (by their last name component)."""
    return name.rsplit(".", 1)[-1] in PROJECTIONS


class _TextDelta:
    """Bytes each new token adds to the decoded text (the tokenizer decides how ids become
    text; a character still incomplete is held back until its last byte arrives)."""

    def __init__(self, tokenizer):
        self.tokenizer, self.ids, self.text = tokenizer, [], ""

    def __call__(self, token: int) -> bytes:
        self.ids.append(token)
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if text.endswith("\ufffd") or not text.startswith(self.text):
            return b""
        new, self.text = text[len(self.text):], text
        return new.encode("utf-8")


class CIMEngine(GenerationEngine):
    """One model on one programmed chip; generates for one request at a time."""

    def __init__(self, model: ResolvedModel, config, n_ctx: Optional[int], n_threads: int, seed: int = 0,
                 range_text: str = DEFAULT_RANGE_TEXT, loaded=None,
                 input_ranges: Optional[dict[str, tuple[float, bool]]] = None):
        """Load ``model`` into torch (or take ``loaded`` = ``(torch_model, tokenizer)``, which is
        converted in place), map its projections with ``config`` (a ``cim_backend`` CIMConfig),
        set the DAC ranges on ``range_text`` (or take a stored chip's ``input_ranges``) and
        program chip ``seed``."""
        from cim_backend.network import convert, program_model

        from assistant.models.hf_model import load_hf_model

        self.model, self.config, self.seed, self.n_threads = model, config, seed, n_threads
        if loaded is not None:
            import torch

            torch.set_num_threads(n_threads)  # load_hf_model sets it when it loads
        net, self.tokenizer = loaded if loaded is not None else load_hf_model(model.path, n_threads)
        self.net = convert(net, config, inplace=True, include=is_projection)
        limit = getattr(self.net.config, "max_position_embeddings", None) or 2048
        self.n_ctx = min(n_ctx or limit, limit)  # None: the model's own context
        self._set_input_ranges(range_text, input_ranges)
        self.program = program_model(self.net, [seed], seed=seed)
        self.chat_format: ChatFormat = chat_format_for(
            model.info.chat_template, self.tokenizer.bos_token or "", self.tokenizer.eos_token or "")
        ends = self.net.generation_config.eos_token_id
        self._ends = frozenset([ends] if isinstance(ends, int) else ends or []) | {self.tokenizer.eos_token_id}
        self._lock = threading.Lock()

    def _set_input_ranges(self, range_text: str, stored: Optional[dict[str, tuple[float, bool]]]) -> None:
        import torch

        from cim_backend.network import calibrate_input_ranges, cim_layers

        if stored is None:
            with torch.no_grad():
                calibrate_input_ranges(self.net, self.tokenizer(range_text, return_tensors="pt").input_ids)
            return
        layers = dict(cim_layers(self.net))
        if set(layers) != set(stored):
            raise InvalidRequestError("the stored chip does not match this model's layers: program it again",
                                      param="chip")
        for name, (value, signed) in stored.items():
            layers[name].input_range.fill_(value)
            layers[name].input_signed.fill_(signed)

    def input_ranges(self) -> dict[str, tuple[float, bool]]:
        """Every chip layer's DAC range and whether its input is signed (part of the chip)."""
        from cim_backend.network import cim_layers

        return {name: (float(layer.input_range), bool(layer.input_signed)) for name, layer in cim_layers(self.net)}

    def tokenize(self, text: str) -> list[int]:
        """Tokens of ``text`` as the model sees a prompt (special tokens parsed)."""
        return list(self.tokenizer(text, add_special_tokens=True).input_ids)

    def text_prompt(self, text: str, params: SamplingParams, use_adapter: bool = False) -> Prompt:
        """Tokenize ``text``; ContextLengthExceededError if it leaves no room to answer."""
        if use_adapter:
            raise InvalidRequestError("the CIM backend runs the base model only (no adapter)", param="strategy")
        if params.grammar:
            raise InvalidRequestError("structured output is not available on the CIM backend", param="response_format")
        tokens = self.tokenize(text)
        if len(tokens) >= self.n_ctx:
            raise ContextLengthExceededError(
                f"the prompt is {len(tokens)} tokens but the model's context is {self.n_ctx}; shorten the messages",
                param="messages")
        vocab = self.net.config.vocab_size
        if any(not 0 <= token < vocab for token, _ in params.logit_bias):
            raise InvalidRequestError(f"logit_bias names a token outside the vocabulary (0..{vocab - 1})",
                                      param="logit_bias")
        room = self.n_ctx - len(tokens)
        max_tokens = room if params.max_tokens is None else min(params.max_tokens, room)
        return Prompt(tokens=tokens, params=replace(params, max_tokens=max_tokens))

    def generate(self, prompt: Prompt, cancel: Optional[threading.Event] = None) -> Iterator[GenerationEvent]:
        """Stream a continuation: TextPiece records, then one GenerationStats."""
        with self._lock:
            params = prompt.params
            yield from stream_events(self._token_stream(prompt.tokens, params), _TextDelta(self.tokenizer),
                                     self._ends.__contains__, params.stop, params.max_tokens, len(prompt.tokens),
                                     cancel)

    def _token_stream(self, tokens: list[int], params: SamplingParams) -> Iterator[int]:
        """Token ids one by one: the prompt in one forward, then one forward per token on the
        KV cache (the chip's read noise is fresh at every forward)."""
        import torch

        generator = torch.Generator().manual_seed(params.seed if params.seed is not None
                                                  else random.randint(0, 2**31 - 1))
        history = list(tokens)
        with torch.no_grad():
            out = self.net(torch.tensor([tokens]), use_cache=True)
            while True:
                token = pick_token(out.logits[0, -1], history, params, generator)
                yield token
                history.append(token)
                out = self.net(torch.tensor([[token]]), past_key_values=out.past_key_values, use_cache=True)

    def logits(self, tokens: list[int], use_adapter: bool = False) -> "list[float]":
        """The next-token logits after ``tokens`` (one forward through the chip)."""
        import torch

        with self._lock, torch.no_grad():
            return self.net(torch.tensor([tokens])).logits[0, -1].tolist()

    def describe(self) -> dict:
        """Model and chip facts for /health and /v1/models."""
        cfg = self.config
        return {"id": self.model.name, "backend": "cim", "path": str(self.model.path), "n_ctx": self.n_ctx,
                "n_threads": self.n_threads, "chat_format": self.chat_format.name,
                "chip": {"seed": self.seed, "device": cfg.device.name, "weight_bits": cfg.weight_bits,
                         "adc_bits": cfg.adc_bits, "dac_bits": cfg.dac_bits, "sigma_rel": cfg.sigma_rel,
                         "per_channel_scales": cfg.per_channel_scales, "weights": self.program.weights,
                         "verified_weights": self.program.verified_weights,
                         "pulses": self.program.pulses_per_chip},
                **self.model.info.summary()}
