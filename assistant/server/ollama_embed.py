"""``POST /api/embed`` and the older ``/api/embeddings``: the notes' encoder
(all-MiniLM-L6-v2), as ``/v1/embeddings`` uses it. A chat model's name is answered with
the encoder, and the answer says so."""
from __future__ import annotations

import asyncio
import math
import time
from typing import Optional

from assistant.errors import InvalidRequestError
from assistant.models.catalog import DEFAULT_ALIAS
from assistant.server.ollama_models import LATEST, ModelNames
from assistant.server.state import ServerState

# Ollama's library name for the same encoder, so clients set up for Ollama find it here
OLLAMA_LIBRARY_NAMES = {"all-minilm": "all-MiniLM-L6-v2"}


def embedding_model(requested: str, names: ModelNames, encoder: str) -> tuple[str, list[str]]:
    """(the model that embeds, warnings): the encoder by its name, Ollama's name or
    ``default``; a chat model's name gets the encoder and a warning; others 404."""
    base = requested.strip()
    if base.endswith(f":{LATEST}"):
        base = base[: -len(LATEST) - 1]
    if OLLAMA_LIBRARY_NAMES.get(base.lower(), base).lower() == encoder.lower() or base == DEFAULT_ALIAS:
        return encoder, []
    names.catalog(requested)  # ModelNotFoundError (404) unless it is a catalog model
    return encoder, [f"'{requested}' is a chat model: embedded with {encoder}, the encoder of the notes"]


def shortened(vector: list[float], dimensions: int) -> list[float]:
    """The first ``dimensions`` values, scaled back to length 1, as Ollama's ``dimensions`` does."""
    head = vector[:dimensions]
    norm = math.sqrt(sum(value * value for value in head)) or 1.0
    return [value / norm for value in head]


async def embed(state: ServerState, requested: str, texts: list[str], dimensions: Optional[int] = None) -> dict:
    """Ollama's /api/embed answer for ``texts`` (none: only "loads" the encoder)."""
    assistant = state.require_assistant()
    knowledge = assistant.knowledge
    names = ModelNames(state.settings, assistant.pool)
    model, warnings = embedding_model(requested, names, knowledge.embedding_model_name)
    if dimensions is not None and dimensions > knowledge.spec.dim:
        raise InvalidRequestError(f"{model} gives {knowledge.spec.dim}-dimensional vectors; dimensions must be "
                                  "at most that", param="dimensions")
    if any(not text for text in texts):
        raise InvalidRequestError("input must not contain empty strings", param="input")
    started = time.perf_counter()
    loop = asyncio.get_running_loop()
    vectors = await loop.run_in_executor(state.executor, knowledge.embed, texts) if texts else []
    if dimensions is not None:
        vectors = [shortened(vector, dimensions) for vector in vectors]
    tokens = await loop.run_in_executor(state.executor, knowledge.count_embedding_tokens, texts) if texts else 0
    answer = {"model": f"{model}:{LATEST}", "embeddings": vectors,
              "total_duration": int((time.perf_counter() - started) * 1e9), "load_duration": 0,
              "prompt_eval_count": tokens}
    if warnings:
        answer.update(requested_model=requested, warnings=warnings)
    return answer


async def embeddings(state: ServerState, requested: str, prompt: str) -> dict:
    """The older /api/embeddings answer: one ``embedding`` (empty for an empty prompt)."""
    answer = await embed(state, requested, [prompt] if prompt else [])
    vectors = answer.pop("embeddings")
    extras = {key: answer[key] for key in ("requested_model", "warnings") if key in answer}
    return {"embedding": vectors[0] if vectors else [], **extras}
