"""From an engine's stream of token ids to the generation API's events, once for every
engine (llama.cpp's and the simulated CIM chip's)."""
from __future__ import annotations

import codecs
import threading
import time
from typing import Callable, Iterator, Optional, Sequence

from assistant.models.generation import GenerationEvent, GenerationStats, TextPiece
from assistant.models.stop_matcher import StopMatcher


def stream_events(token_stream: Iterator[int], token_bytes: Callable[[int], bytes], is_end: Callable[[int], bool],
                  stops: Sequence[str], max_tokens: int, prompt_tokens: int, cancel: Optional[threading.Event] = None,
                  on_first: Optional[Callable[[], int]] = None) -> Iterator[GenerationEvent]:
    """The events of one generation from an engine's token stream: ``TextPiece`` records
    (UTF-8 decoded incrementally, stop strings held back and cut), then ``GenerationStats``.
    Ends on an end-of-generation token or a stop string ("stop"), ``cancel`` ("cancelled") or
    ``max_tokens`` ("length"); closes ``token_stream``. ``on_first`` runs when the first token
    arrives and returns how many prompt tokens came from a cache."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    matcher = StopMatcher(list(stops))
    start = time.perf_counter()
    first_at: Optional[float] = None
    produced, finish, cached = 0, "length", 0
    try:
        for token in token_stream:
            if first_at is None:
                first_at = time.perf_counter()
                cached = on_first() if on_first else 0
            if is_end(token):
                finish = "stop"
                break
            produced += 1
            text, stopped = matcher.feed(decoder.decode(token_bytes(token)))
            if text:
                yield TextPiece(text)
            if stopped:
                finish = "stop"
                break
            if cancel is not None and cancel.is_set():
                finish = "cancelled"
                break
            if produced >= max_tokens:
                break
    finally:
        token_stream.close()
    if finish != "stop":
        tail = matcher.flush() + decoder.decode(b"", final=True)
        if tail:
            yield TextPiece(tail)
    end = time.perf_counter()
    first_at = first_at or end
    decode_s = end - first_at
    yield GenerationStats(
        finish_reason=finish, prompt_tokens=prompt_tokens, completion_tokens=produced, prompt_cached_tokens=cached,
        time_to_first_token_s=first_at - start, total_s=end - start,
        decode_tokens_per_s=(produced - 1) / decode_s if produced > 1 and decode_s > 0 else 0.0)
