"""The llama.cpp engine: one loaded GGUF model and one typed streaming generation API."""
from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Iterator, Optional

from assistant.errors import ContextLengthExceededError, InvalidRequestError, ModelFileError, ModelTooLargeError
from assistant.models.build_info import amx_guard_needed, cpu_flags, llama_build_features
from assistant.models.catalog import ResolvedModel
from assistant.models.chat_format import ChatFormat, ChatMessage, chat_format_for
from assistant.models.context_growth import ANSWER_HEADROOM, INITIAL_CONTEXT, next_size, resize_context, start_size
from assistant.models.engine_api import GenerationEngine, Prompt
from assistant.models.event_stream import stream_events
from assistant.models.generation import GenerationEvent, SamplingParams
from assistant.models.grammar import compile_grammar
from assistant.models.prefix_cache import PrefixCache, template_head


# The KV cache's element type: f16 is llama.cpp's default; q8_0 halves the cache (the
# largest part of the server's memory at long contexts) and needs flash attention for V.
KV_CACHE_TYPES = ("f16", "q8_0")


def kv_cache_options(kv_cache_type: str, flash_attention: bool = False) -> dict:
    """``llama_cpp.Llama`` keyword arguments for a KV cache type; ``flash_attention``: the
    model's choice for f16 (a q8_0 V cache cannot go without it)."""
    import llama_cpp

    if kv_cache_type == "f16":
        return {"flash_attn": flash_attention}
    if kv_cache_type == "q8_0":
        return {"type_k": llama_cpp.GGML_TYPE_Q8_0, "type_v": llama_cpp.GGML_TYPE_Q8_0, "flash_attn": True}
    raise InvalidRequestError(f"kv_cache_type must be one of {', '.join(KV_CACHE_TYPES)}", param="kv_cache_type")


def _bias_processor(logit_bias: tuple[tuple[int, float], ...], n_vocab: int):
    """A llama-cpp-python logits processor adding OpenAI-style biases; None when there are none."""
    if not logit_bias:
        return None
    from llama_cpp import LogitsProcessorList

    valid = [(token, bias) for token, bias in logit_bias if 0 <= token < n_vocab]
    if len(valid) != len(logit_bias):
        raise InvalidRequestError(f"logit_bias names a token outside the vocabulary (0..{n_vocab - 1})",
                                  param="logit_bias")
    ids = [token for token, _ in valid]
    biases = [bias for _, bias in valid]

    def apply(_input_ids, scores):
        scores[ids] += biases
        return scores

    return LogitsProcessorList([apply])


@dataclass
class LoadedAdapter:
    """A LoRA adapter held by llama.cpp next to the model, switched on per request."""

    name: str
    path: Path
    metadata: dict
    handle: object = field(repr=False, default=None)


class Engine(GenerationEngine):
    """Keeps one model loaded; generates for one request at a time (callers serialise)."""

    def __init__(self, model: ResolvedModel, n_ctx: int, n_threads: int, n_batch: int = 512,
                 extra_buffers: Optional[bool] = None, kv_cache_type: str = "f16", prefix_reuse: bool = True,
                 initial_context: Optional[int] = INITIAL_CONTEXT):
        """``n_ctx``: the longest prompt + answer served. ``initial_context``: the context
        allocated now, grown on demand up to ``n_ctx`` (0 or None: all of it now; see
        ``context_growth``). ``n_batch``: prompt tokens evaluated per llama.cpp batch (also
        its ubatch). ``extra_buffers``: llama.cpp's extra buffer types (weight repacking,
        and the AMX path where it is compiled in); None = on, unless this CPU would take a
        compiled-in AMX path (see ``build_info``). ``kv_cache_type``: one of KV_CACHE_TYPES.
        ``prefix_reuse``: reuse the cached prompt prefix (off only to measure without it)."""
        import llama_cpp  # here, so that importing this module stays cheap

        from assistant.models.llama_loader import load_llama

        self.model = model
        self.n_threads = n_threads
        if extra_buffers is None:
            extra_buffers = not amx_guard_needed(cpu_flags(), llama_build_features())
        self.extra_buffers = extra_buffers
        allocated = start_size(n_ctx, initial_context)
        attention = kv_cache_options(kv_cache_type, model.flash_attention)
        self.flash_attention = bool(attention.get("flash_attn"))
        try:
            self._llm = load_llama(
                extra_buffers, model_path=str(model.path), n_ctx=allocated, n_threads=n_threads,
                n_threads_batch=n_threads, n_batch=min(n_batch, allocated), n_ubatch=min(n_batch, allocated),
                verbose=False, **attention)
        except (ValueError, RuntimeError) as exc:
            raise ModelFileError(f"llama.cpp could not load {model.path}: {exc}", param="model") from exc
        # llama.cpp may pad the context (128 -> 256), but llama-cpp-python sizes its token
        # buffer by the n_ctx asked for: a longer prompt + answer would overflow it.
        self.n_ctx = min(n_ctx, self._llm.n_ctx()) if allocated == n_ctx else n_ctx
        self.context_growths = 0
        self.last_growth_s = 0.0
        self.kv_cache_type = kv_cache_type
        self.n_batch = int(self._llm.n_batch)
        self.prefixes = PrefixCache(self._llm, enabled=prefix_reuse)
        self.chat_format: ChatFormat = chat_format_for(
            model.info.chat_template, self._token_text(self._llm.token_bos()), self._token_text(self._llm.token_eos()))
        self.prefixes.head = template_head([self.tokenize(self.render_chat([ChatMessage("user", text)]))
                                            for text in ("Hello", "What is the time?")])
        vocab = self._llm._model.vocab
        # EOS and the other end-of-generation tokens (<|im_end|>, <end_of_turn>), bound once:
        # this runs for every generated token.
        self._is_end = lambda token: bool(llama_cpp.llama_vocab_is_eog(vocab, token))
        self._lock = threading.Lock()
        self.adapter: Optional[LoadedAdapter] = None
        self._adapter_on = False
        self._cache_key: Optional[str] = None  # whose weights computed the KV cache: None = the base model's
        self.adapter_switches = 0
        self.last_switch_s = 0.0

    @cached_property
    def model_sha256(self) -> str:
        """sha256 of the loaded GGUF: adapters name the base they were trained on by it."""
        from assistant.models.catalog import sha256_file

        return sha256_file(self.model.path)

    def load_adapter(self, path: Path) -> LoadedAdapter:
        """Load a GGUF LoRA adapter once (off until a request turns it on). Refuses an
        adapter trained for another base model."""
        import llama_cpp

        from assistant.errors import AdapterMismatchError
        from assistant.models.adapter_format import read_adapter_metadata
        from assistant.models.gguf_info import read_gguf_info

        metadata = read_adapter_metadata(read_gguf_info(path))
        if metadata.get("base_sha256") != self.model_sha256:
            raise AdapterMismatchError(
                f"adapter '{path.stem}' was trained for base model {metadata.get('base_model')} "
                f"(sha256 {str(metadata.get('base_sha256'))[:12]}...), not the loaded '{self.model.name}' "
                f"(sha256 {self.model_sha256[:12]}...)", param="adapter")
        with self._lock:
            handle = llama_cpp.llama_adapter_lora_init(self._llm.model, str(path).encode())
            if handle is None:
                raise ModelFileError(f"llama.cpp could not load the adapter {path}", param="adapter")
            # Freed with the model's resources, before the model itself (the stack is LIFO).
            self._llm._stack.callback(lambda: llama_cpp.llama_adapter_lora_free(handle))
            self.adapter = LoadedAdapter(path.stem, path, metadata, handle)
            self._adapter_on = None  # unknown: force the next request to set it
            self._forget_adapter_prefixes()
        return self.adapter

    def unload_adapter(self) -> None:
        """Take the adapter off this engine (its llama.cpp handle is freed with the model)."""
        with self._lock:
            if self.adapter is None:
                return
            if self._adapter_on is not False:
                self._switch_adapter(False)
            self._forget_adapter_prefixes()
            self.adapter = None

    def _forget_adapter_prefixes(self) -> None:
        """A cache computed with an adapter that is going away is useless: only the base
        model's prefix survives an adapter change."""
        if self._cache_key is not None:
            self.prefixes.switch(self._cache_key, None, keep_old=False)
            self._cache_key = None
        self.prefixes.drop_except(None)

    @property
    def generating(self) -> bool:
        """A generation (or a logits probe) holds the engine now."""
        return self._lock.locked()

    def _switch_adapter(self, on: bool) -> None:
        """Turn the adapter on or off for the next generation (no model reload). The KV
        cache was computed with the other weights: its prompt prefix is kept aside under
        those weights' key, and the prefix kept for the new weights, if any, comes back."""
        if on == self._adapter_on:
            return
        started = time.perf_counter()
        self._set_adapter_weights(on)
        key = self.adapter.name if on else None
        if key != self._cache_key:
            self.prefixes.switch(self._cache_key, key)
            self._cache_key = key
        self._adapter_on = on
        self.adapter_switches += 1
        self.last_switch_s = time.perf_counter() - started

    def _set_adapter_weights(self, on: bool) -> None:
        """Tell llama.cpp's context to run with (or without) the loaded adapter."""
        import ctypes

        import llama_cpp

        if on:
            adapters = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(self.adapter.handle)
            scales = (ctypes.c_float * 1)(1.0)
            llama_cpp.llama_set_adapters_lora(self._llm.ctx, adapters, 1, scales)
        else:
            llama_cpp.llama_set_adapters_lora(self._llm.ctx, None, 0, None)

    @property
    def allocated_context(self) -> int:
        """Tokens the current llama.cpp context holds (grows on demand up to ``n_ctx``)."""
        return int(self._llm.context_params.n_ctx)

    def _make_room(self, needed: int) -> None:
        """Grow the context to hold ``needed`` tokens (no-op when it already does), keeping
        the cached tokens and the adapter setting. Caller holds the lock."""
        if needed <= self.allocated_context or self.allocated_context >= self.n_ctx:
            return
        started = time.perf_counter()
        size = next_size(self.allocated_context, needed, self.n_ctx)
        try:
            resize_context(self._llm, size)
        except ValueError as exc:
            raise ModelTooLargeError(f"could not grow the context to {size} tokens "
                                     f"(out of memory?); it stays at {self.allocated_context}") from exc
        finally:
            if self._adapter_on:  # a new context starts without adapters
                self._set_adapter_weights(True)
        self.context_growths += 1
        self.last_growth_s = time.perf_counter() - started

    def _token_text(self, token: int) -> str:
        if token < 0:
            return ""
        return self._llm.detokenize([token], special=True).decode("utf-8", errors="replace")

    def tokenize(self, text: str) -> list[int]:
        """Tokens of ``text`` as the model sees a prompt (special tokens parsed, BOS added
        unless the text already starts with it)."""
        tokens = self._llm.tokenize(text.encode("utf-8"), add_bos=True, special=True)
        bos = self._llm.token_bos()
        if len(tokens) > 1 and tokens[0] == bos and tokens[1] == bos:
            tokens = tokens[1:]  # the template wrote BOS itself
        return tokens

    def text_prompt(self, text: str, params: SamplingParams, use_adapter: bool = False) -> Prompt:
        """Tokenize ``text``; ContextLengthExceededError if it leaves no room to answer.
        ``max_tokens`` is clamped to the room left in the context."""
        tokens = self.tokenize(text)
        if len(tokens) >= self.n_ctx:
            raise ContextLengthExceededError(
                f"the prompt is {len(tokens)} tokens but the model's context is {self.n_ctx}; "
                "shorten the messages", param="messages")
        _bias_processor(params.logit_bias, self._llm.n_vocab())  # refuse bad token ids before streaming
        room = self.n_ctx - len(tokens)
        max_tokens = room if params.max_tokens is None else min(params.max_tokens, room)
        return Prompt(tokens=tokens, params=replace(params, max_tokens=max_tokens), use_adapter=use_adapter)

    def generate(self, prompt: Prompt, cancel: Optional[threading.Event] = None) -> Iterator[GenerationEvent]:
        """Stream a continuation: TextPiece records, then one GenerationStats. One
        generation at a time: a second caller waits for the first."""
        if prompt.use_adapter and self.adapter is None:
            raise InvalidRequestError("no adapter is loaded for this model", param="strategy", code="no_adapter")
        with self._lock:
            if self.adapter is not None:
                self._switch_adapter(prompt.use_adapter)
            # Room for the prompt and the start of its answer now; a longer answer grows it again.
            self._make_room(len(prompt.tokens) + min(prompt.params.max_tokens, ANSWER_HEADROOM))
            yield from self._generate(prompt.tokens, prompt.params.max_tokens, prompt.params, cancel)

    def _generate(self, tokens: list[int], max_tokens: int, params: SamplingParams,
                  cancel: Optional[threading.Event]) -> Iterator[GenerationEvent]:
        # Seeded requests too: the reuse point is batch-aligned, so the prompt is evaluated in
        # the same batches as from an empty cache and gives the same text (prefix_cache.py).
        cached = self.prefixes.prepare(tokens)
        self._llm.set_seed(params.seed if params.seed is not None else random.randint(0, 2**31 - 1))
        # Parsed once per request (llama.cpp builds its grammar sampler from it per generate).
        grammar = compile_grammar(params.grammar, self._llm.model) if params.grammar else None

        def first_token() -> int:
            self.prefixes.evaluated(len(tokens))
            return cached

        yield from stream_events(self._token_stream(tokens, params, grammar), lambda t: self._llm.detokenize([t]),
                                 self._is_end, params.stop, max_tokens, len(tokens), cancel, first_token)

    def _token_stream(self, tokens: list[int], params: SamplingParams, grammar) -> Iterator[int]:
        """llama.cpp's token generator for ``tokens`` with these sampling parameters,
        growing the context between tokens when the next one would not fit."""
        for token in self._llm.generate(
                tokens, top_k=params.top_k, top_p=params.top_p, temp=params.temperature,
                repeat_penalty=params.repeat_penalty, min_p=0.0,
                logits_processor=_bias_processor(params.logit_bias, self._llm.n_vocab()), grammar=grammar):
            yield token
            # Suspended between tokens: the generator evaluates this token next, in whatever
            # context the Llama holds then (its sampler keeps the grammar and penalty state).
            self._make_room(self._llm.n_tokens + 1)

    def logits(self, tokens: list[int], use_adapter: bool = False) -> "list[float]":
        """The next-token logits after ``tokens`` (for parity checks and evaluation)."""
        with self._lock:
            if self.adapter is not None:
                self._switch_adapter(use_adapter)
            import ctypes

            import llama_cpp

            self.prefixes.invalidate()
            self._make_room(len(tokens))
            self._llm.eval(tokens)
            n_vocab = self._llm.n_vocab()
            pointer = llama_cpp.llama_get_logits_ith(self._llm.ctx, -1)  # the last token's row
            values = list(ctypes.cast(pointer, ctypes.POINTER(ctypes.c_float))[:n_vocab])
            self.prefixes.invalidate()  # the KV cache now holds this probe, not a conversation
            return values

    def describe(self) -> dict:
        """Model facts for /health and /v1/models."""
        return {"id": self.model.name, "path": str(self.model.path), "n_ctx": self.n_ctx,
                "n_ctx_allocated": self.allocated_context, "adapter": self.adapter.name if self.adapter else None,
                "n_threads": self.n_threads, "n_batch": self.n_batch, "extra_buffers": self.extra_buffers,
                "kv_cache_type": self.kv_cache_type, "flash_attention": self.flash_attention,
                "chat_format": self.chat_format.name, **self.model.info.summary()}
