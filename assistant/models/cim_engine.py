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
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator, Optional

from assistant.errors import ContextLengthExceededError, InvalidRequestError
from assistant.models.catalog import ResolvedModel
from assistant.models.chat_format import ChatFormat, chat_format_for
from assistant.models.engine_api import GenerationEngine, Prompt
from assistant.models.event_stream import stream_events
from assistant.models.generation import GenerationEvent, GenerationStats, SamplingParams
from assistant.models.torch_sampling import pick_token

PROJECTIONS = frozenset({"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"})
# A chat turn the DAC and ADC ranges are also set on (chat markup has activations of its own),
# besides windows of the shipped calibration text.
RANGE_CHAT = ("<|im_start|>user\nMy notes say the night train leaves at 22:40 from platform 7. What is 17 times 3?"
              "<|im_end|>\n<|im_start|>assistant\nIt is 51.<|im_end|>")


def sites_on(engine: "CIMEngine") -> bool:
    """True when the engine's TSB is in the computation now."""
    from cim_backend.layers import Mode

    return engine.block is not None and engine.block.mode != Mode.DIGITAL


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


VARIANTS = ("digital", "cim", "cim+tsb")


@dataclass
class ChipMeasurements:
    """What a chip measured on text when it was made, so that it reloads identically: every
    chip layer's DAC range and input sign, its ADC range (when the ADC is not ideal) and the
    calibrated Tiny Shared Block, if any (see :mod:`assistant.models.cim_tsb`)."""

    input_ranges: dict[str, tuple[float, bool]]
    adc_ranges: dict[str, float] = field(default_factory=dict)
    tsb: Optional[dict] = None


class CIMEngine(GenerationEngine):
    """One model on one programmed chip; generates for one request at a time."""

    def __init__(self, model: ResolvedModel, config, n_ctx: Optional[int], n_threads: int, seed: int = 0,
                 loaded=None, measured: Optional[ChipMeasurements] = None, tokenizer_cache: Optional[Path] = None):
        """Load ``model`` into torch (or take ``loaded`` = ``(torch_model, tokenizer)``, which is
        converted in place), map its projections with ``config`` (a ``cim_backend`` CIMConfig),
        set the DAC and ADC ranges on text (:meth:`range_inputs`; or take a stored chip's ``measured``
        ones), program chip ``seed`` (no weight write-verified; see :meth:`write_verified`) and
        install the chip's TSB when it has one. ``tokenizer_cache``: see ``load_hf_model``."""
        from cim_backend.network import convert, program_model

        from assistant.models.hf_model import load_hf_model

        self.model, self.config, self.seed, self.n_threads = model, config, seed, n_threads
        if loaded is not None:
            import torch

            torch.set_num_threads(n_threads)  # load_hf_model sets it when it loads
        net, self.tokenizer = loaded if loaded is not None else load_hf_model(model.path, n_threads, tokenizer_cache)
        self.net = convert(net, config, inplace=True, include=is_projection)
        self.net.eval()  # new CIM layers start in training mode, which would move their ranges
        limit = getattr(self.net.config, "max_position_embeddings", None) or 2048
        self.n_ctx = min(n_ctx or limit, limit)  # None: the model's own context
        self._set_input_ranges(measured.input_ranges if measured else None)
        self.program = program_model(self.net, [seed], seed=seed)
        self._set_adc_ranges(measured.adc_ranges if measured else None)
        self.block = None  # the TSB, once calibrated or installed
        if measured is not None and measured.tsb is not None:
            from assistant.models.cim_tsb import install_tsb

            install_tsb(self, measured.tsb)
        self.chat_format: ChatFormat = chat_format_for(
            model.info.chat_template, self.tokenizer.bos_token or "", self.tokenizer.eos_token or "")
        ends = self.net.generation_config.eos_token_id
        self._ends = frozenset([ends] if isinstance(ends, int) else ends or []) | {self.tokenizer.eos_token_id}
        self._lock = threading.Lock()

    def range_inputs(self) -> list:
        """Token batches the ranges are set on: four 64-token windows of the shipped calibration
        text and one chat turn (never the evaluation text)."""
        import torch

        from assistant.models.shipped_text import range_windows

        return [torch.tensor(range_windows(self.tokenizer)), self.tokenizer(RANGE_CHAT, return_tensors="pt").input_ids]

    def _set_input_ranges(self, stored: Optional[dict[str, tuple[float, bool]]]) -> None:
        import torch

        from cim_backend.network import calibrate_input_ranges, cim_layers

        if stored is None:
            with torch.no_grad():
                for ids in self.range_inputs():
                    calibrate_input_ranges(self.net, ids)
            return
        layers = dict(cim_layers(self.net))
        if set(layers) != set(stored):
            raise InvalidRequestError("the stored chip does not match this model's layers: program it again",
                                      param="chip")
        for name, (value, signed) in stored.items():
            layers[name].input_range.fill_(value)
            layers[name].input_signed.fill_(signed)

    def _set_adc_ranges(self, stored: Optional[dict[str, float]]) -> None:
        """Each layer's ADC full scale from its partial sums on :meth:`range_inputs` (see
        :mod:`cim_backend.adc_calibration`), or the stored chip's."""
        from cim_backend.adc_calibration import calibrate_adc_ranges, set_adc_ranges

        if self.config.adc_bits is None:
            return
        if stored:
            set_adc_ranges(self.net, stored)
            return
        import torch

        # Measured through noisy reads: seeded with the chip's seed, so that one seed is one
        # chip however many this process built before (the global RNG is left as it was).
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            calibrate_adc_ranges(self.net, self.range_inputs())

    def measurements(self) -> ChipMeasurements:
        """What this chip measured (DAC and ADC ranges, TSB): the part of a chip record that
        its seed alone does not give."""
        from cim_backend.network import cim_layers

        from assistant.models.cim_tsb import tsb_state

        layers = list(cim_layers(self.net))
        if self.block is not None:  # names as they were before the TSB wrapped each layer
            layers = [(name.removesuffix(".layer"), layer) for name, layer in layers]
        adc = {} if self.config.adc_bits is None else {name: layer.cim_config.adc_range for name, layer in layers}
        return ChipMeasurements({name: (float(layer.input_range), bool(layer.input_signed)) for name, layer in layers},
                                adc, tsb_state(self) if self.block is not None else None)

    @contextmanager
    def write_verified(self, masks: dict) -> Iterator[None]:
        """Inside: this chip with the weights ``masks`` selects (by layer name) write-verified
        as well, as programming it with them verified would have made it (the selective
        write-verify baseline), its ADC ranges set again on the new partial sums; after: the
        chip as it was. Only before a TSB is installed."""
        from cim_backend.adc_calibration import set_adc_ranges
        from cim_backend.network import restore_programmed, verify_selected

        if self.block is not None:
            raise InvalidRequestError("selective write-verify is measured on a chip without its TSB", param="chip")
        adc_ranges = self.measurements().adc_ranges
        with self._lock:
            previous = verify_selected(self.net, masks, self.seed)
            self._set_adc_ranges(None)
        try:
            yield
        finally:
            with self._lock:
                restore_programmed(self.net, previous)
                if adc_ranges:
                    set_adc_ranges(self.net, adc_ranges)

    @contextmanager
    def variant(self, name: str) -> Iterator[None]:
        """Run as ``digital`` (every layer off the chip), ``cim`` (the chip, TSB off) or
        ``cim+tsb`` (the chip with its block) inside the block; back to serving after."""
        from cim_backend.layers import Mode
        from cim_backend.network import set_mode

        if name not in VARIANTS:
            raise InvalidRequestError(f"unknown variant '{name}' (known: {', '.join(VARIANTS)})", param="variant")
        if name == "cim+tsb" and self.block is None:
            raise InvalidRequestError("this chip has no calibrated TSB: run 'assistant cim calibrate' first",
                                      param="variant", code="no_tsb")
        block_mode = self.block.mode if self.block is not None else None
        with self._lock:
            set_mode(self.net, Mode.DIGITAL if name == "digital" else Mode.CHIPS)
            if self.block is not None:
                self.block.mode = Mode.CHIPS if name == "cim+tsb" else Mode.DIGITAL
        try:
            yield
        finally:
            with self._lock:
                set_mode(self.net, Mode.CHIPS)
                if self.block is not None:
                    self.block.mode = block_mode

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
            for event in stream_events(self._token_stream(prompt.tokens, params), _TextDelta(self.tokenizer),
                                       self._ends.__contains__, params.stop, params.max_tokens, len(prompt.tokens),
                                       cancel):
                yield replace(event, cim=self.request_cost(event)) if isinstance(event, GenerationStats) else event

    def token_cost(self):
        """The chip's cost of one token (``cim_backend.cost.TokenCost``), TSB included when on."""
        from cim_backend.cost import token_cost

        sites = {}
        if sites_on(self):
            sites = {name: (m.layer.out_features, self.block.width) for name, m in self.net.named_modules()
                     if hasattr(m, "exact_residual")}
        info = self.model.info  # the CPU reads the GGUF's weights: its bits per parameter
        return token_cost(self.net, sites, cpu_weight_bits=8 * info.file_size_bytes / max(info.parameter_count, 1))

    def request_cost(self, stats: GenerationStats) -> dict:
        """The ``cim`` object of a response: simulated energy and latency of every token this
        request sent through the chip (prompt and answer), an estimate for a CPU doing the same
        matrix work, and the simulation's own speed."""
        cost = self.token_cost()
        tokens = stats.prompt_tokens + stats.completion_tokens
        return {"energy_uj": round(tokens * cost.energy_pj * 1e-6, 3),
                "latency_ms": round(tokens * cost.latency_ns * 1e-6, 3),
                "cpu_energy_uj_estimate": round(tokens * cost.cpu_energy_pj * 1e-6, 3),
                "tokens": tokens, "chip_seed": self.seed, "tsb": bool(sites_on(self)),
                "simulation_tokens_per_s": round(stats.decode_tokens_per_s, 3),
                "adc_bits": self.config.adc_bits, "weight_bits": self.config.weight_bits}

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
                "tsb": self.block is not None,
                "n_threads": self.n_threads, "chat_format": self.chat_format.name,
                "chip": {"seed": self.seed, "device": cfg.device.name, "weight_bits": cfg.weight_bits,
                         "adc_bits": cfg.adc_bits, "dac_bits": cfg.dac_bits, "sigma_rel": cfg.sigma_rel,
                         "per_channel_scales": cfg.per_channel_scales, "weights": self.program.weights,
                         "verified_weights": self.program.verified_weights,
                         "pulses": self.program.pulses_per_chip},
                **self.model.info.summary()}
