"""Request bodies of the Ollama API, in Ollama's shapes, validated by pydantic. Unknown
fields and options are accepted and ignored, as Ollama does; what would change the answer
and is not supported (tools, images, raw prompts, thinking) is refused with a 400 rather
than ignored; our ``strategy`` extension is typed."""
from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from assistant.knowledge.encoders import DEFAULT_ENCODER, ENCODERS
from assistant.router.plan import STRATEGIES
from assistant.server.output_schema import OutputSchema

INT32_MAX = 2**31 - 1
# Go's time.ParseDuration units, which Ollama's keep_alive strings use ("5m", "1h30m", "0s")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_S = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_NUMBER, _UNIT = r"(?:\d+(?:\.\d*)?|\.\d+)", r"(?:ns|us|µs|ms|s|m|h)"
DURATION_PATTERN = rf"^[-+]?{_NUMBER}(?:{_UNIT}(?:{_NUMBER}{_UNIT})*)?$"
ENCODER_DIM = ENCODERS[DEFAULT_ENCODER].dim  # the notes' encoder gives vectors this long


def _refuse(message: str) -> PydanticCustomError:
    return PydanticCustomError("unsupported", message)


def duration_seconds(value: Union[int, float, str]) -> float:
    """Seconds in an Ollama ``keep_alive``: a number of seconds, or a Go duration string
    (``"5m"``, ``"-1"``, ``"0s"``); ValueError for anything else."""
    if isinstance(value, (int, float)):
        return float(value)
    text = value.strip()
    try:
        return float(text)
    except ValueError:
        pass
    sign, body = (-1.0, text[1:]) if text.startswith("-") else (1.0, text.lstrip("+"))
    parts = _DURATION_PART.findall(body)
    if not body or "".join(number + unit for number, unit in parts) != body:
        raise ValueError(f"'{value}' is not a duration (e.g. 300, \"5m\", \"1h30m\", 0 to unload, -1 to keep)")
    return sign * sum(float(number) * _UNIT_S[unit] for number, unit in parts)


class OllamaOptions(BaseModel):
    """``options``: the sampling knobs we honour; Ollama's others (num_gpu, mirostat...) ride along unused."""

    model_config = ConfigDict(extra="allow")
    temperature: Optional[float] = Field(None, ge=0.0, le=2.0)
    top_p: Optional[float] = Field(None, gt=0.0, le=1.0)
    top_k: Optional[int] = Field(None, ge=0, le=INT32_MAX, description="0: no top-k cut")
    num_predict: Union[Annotated[int, Field(ge=-2, le=-1)], Annotated[int, Field(ge=1, le=INT32_MAX)], None] = Field(
        None, description="tokens to generate; -1: until a stop, -2: until the context is full")
    num_ctx: Optional[int] = Field(None, ge=1, le=INT32_MAX, description="capped at the loaded context")
    seed: Optional[int] = Field(None, ge=-(2**63), le=2**63 - 1)
    stop: Optional[list[str]] = Field(None, max_length=16)
    repeat_penalty: Optional[float] = Field(None, ge=0.0, le=10.0)

    @field_validator("num_predict", mode="before")
    @classmethod
    def _not_zero(cls, value):
        if value == 0:
            raise _refuse("num_predict must be a positive number of tokens, -1 (until a stop) or -2 (fill the "
                          "context)")
        return value


class _KeepAlive(BaseModel):
    """``keep_alive``, read as seconds: 0 unloads the model after the request."""

    model_config = ConfigDict(extra="allow")
    keep_alive: Union[int, float, Annotated[str, Field(pattern=DURATION_PATTERN)], None] = Field(
        None, description="seconds or a duration ('5m'); 0 unloads the model after this request")

    @field_validator("keep_alive", mode="before")
    @classmethod
    def _duration(cls, value):
        if value is None or value == "":  # "": the default, as Ollama reads it
            return None
        if not isinstance(value, (int, float, str)) or isinstance(value, bool):
            return value  # the type check that follows says what is wrong
        try:
            seconds = duration_seconds(value)
        except ValueError as exc:
            raise PydanticCustomError("invalid_duration", str(exc)) from None
        if math.isnan(seconds):
            raise PydanticCustomError("invalid_duration", "keep_alive must be a number of seconds or a duration")
        return seconds

    def unloads(self) -> bool:
        """``keep_alive: 0``: unload the model once this request is done."""
        return self.keep_alive == 0


class _Generating(_KeepAlive):
    """What /api/chat and /api/generate share."""

    model: str = Field(min_length=1)
    stream: bool = True
    format: Union[OutputSchema, Literal["", "json"], None] = Field(
        None, description="'json', or a JSON schema the answer must match")
    options: Optional[OllamaOptions] = None
    think: Optional[Literal[False]] = Field(None, description="the served models do not think")
    strategy: Literal[STRATEGIES] = "auto"  # type: ignore[valid-type]

    @field_validator("format", mode="before")
    @classmethod
    def _json_or_schema(cls, value):
        if isinstance(value, str) and value not in ("", "json"):
            raise PydanticCustomError("unsupported", "format must be 'json' or a JSON schema (an object)")
        return value

    @field_validator("think", mode="before")
    @classmethod
    def _no_thinking(cls, value):
        if value not in (None, False):
            raise _refuse("the served models do not think: send think: false or leave it out")
        return value


class _TextOnly(BaseModel):
    """A body part that may name ``images``, which the served (text) models cannot read."""

    images: Optional[list[Any]] = Field(None, max_length=0, description="not supported: text-only models")

    @field_validator("images", mode="before")
    @classmethod
    def _no_images(cls, value):
        if value:
            raise _refuse("images are not supported: the served models read text only")
        return value


class OllamaMessage(_TextOnly):
    """One chat message (text only)."""

    model_config = ConfigDict(extra="allow")
    role: Literal["system", "user", "assistant", "tool"]
    content: str = ""


class OllamaChatRequest(_Generating):
    """``POST /api/chat``; no messages only loads (or, with keep_alive 0, unloads) the model."""

    messages: list[OllamaMessage] = Field(default_factory=list)
    tools: Optional[list[Any]] = Field(None, max_length=0, description="not supported: must be empty")

    @field_validator("tools", mode="before")
    @classmethod
    def _no_tools(cls, value):
        if value:
            raise _refuse("tools (function calling) are not supported by this server; send the request without "
                          "'tools'")
        return value


class OllamaGenerateRequest(_Generating, _TextOnly):
    """``POST /api/generate``: ``prompt`` (and ``system``) go through the model's chat
    template; an empty prompt only loads (or, with keep_alive 0, unloads) the model."""

    prompt: str = ""
    system: Optional[str] = None
    suffix: Optional[str] = Field(None, max_length=0, description="not supported")
    template: Optional[str] = Field(None, max_length=0, description="not supported: the model's own template is used")
    raw: Literal[False] = Field(False, description="not supported: the model's own template is used")
    context: Optional[list[int]] = Field(None, max_length=0, description="not supported: use /api/chat")

    @field_validator("suffix", "template", "raw", mode="before")
    @classmethod
    def _own_template_only(cls, value):
        if value:
            raise _refuse("not supported: the prompt always goes through the model's own chat template")
        return value

    @field_validator("context", mode="before")
    @classmethod
    def _no_context(cls, value):
        if value:
            raise _refuse("context (token ids of an earlier answer) is not supported: send the conversation to "
                          "/api/chat")
        return value


class OllamaShowRequest(BaseModel):
    """``POST /api/show``: ``model``, or the older ``name``."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1)
    name: Optional[str] = Field(None, description="older clients send the model's name here")
    verbose: bool = False

    @model_validator(mode="before")
    @classmethod
    def _older_name(cls, data):
        if isinstance(data, dict) and not data.get("model") and data.get("name"):
            return {**data, "model": data["name"]}
        return data


class OllamaEmbedRequest(_KeepAlive):
    """``POST /api/embed``; ``keep_alive`` is accepted, but the encoder stays loaded."""

    model: str = Field(min_length=1)
    input: Union[str, list[Annotated[str, Field(min_length=1)]]] = ""
    truncate: bool = Field(True, description="inputs over 256 tokens are always truncated")
    dimensions: Optional[int] = Field(None, ge=1, le=ENCODER_DIM,
                                      description="keep the first N dimensions (then normalised to length 1)")

    def texts(self) -> list[str]:
        """The inputs as a list; an empty string only "loads" the encoder."""
        if isinstance(self.input, str):
            return [self.input] if self.input else []
        return list(self.input)


class OllamaEmbeddingsRequest(_KeepAlive):
    """``POST /api/embeddings`` (the older single-prompt endpoint)."""

    model: str = Field(min_length=1)
    prompt: str = ""
