"""Request bodies of the OpenAI-compatible API, validated by pydantic. Unknown fields are
accepted and ignored, as OpenAI-compatible servers do; the extensions are typed."""
from __future__ import annotations

from typing import Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator

from assistant.router.plan import BACKENDS, STRATEGIES


class TextPart(BaseModel):
    """A content part; only text parts are supported."""

    type: Literal["text"]
    text: str


class MessageIn(BaseModel):
    """One chat message."""

    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: Union[str, list[TextPart], None] = None

    def text(self) -> str:
        """The message's text, parts joined."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class StreamOptions(BaseModel):
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """``POST /v1/chat/completions``."""

    model_config = ConfigDict(extra="allow")
    model: Optional[str] = None
    messages: list[MessageIn] = Field(min_length=1)
    temperature: Optional[float] = Field(None, ge=0.0, le=2.0)
    top_p: Optional[float] = Field(None, gt=0.0, le=1.0)
    max_tokens: Optional[int] = Field(None, ge=1)
    max_completion_tokens: Optional[int] = Field(None, ge=1)
    stream: bool = False
    stream_options: Optional[StreamOptions] = None
    stop: Union[str, list[str], None] = None
    seed: Optional[int] = None
    logit_bias: Optional[dict[int, float]] = Field(None, description="token id -> bias in [-100, 100]")
    n: int = Field(1, ge=1, le=1, description="Only one choice is generated.")
    strategy: Literal[STRATEGIES] = "auto"  # type: ignore[valid-type]
    backend: Literal[BACKENDS] = "cpu"  # type: ignore[valid-type]

    @field_validator("model")
    @classmethod
    def _catalog_name_only(cls, value):
        # Over HTTP a model is a catalog name: a path would let any client make the server
        # load any file on its disk.
        if value is not None and ("/" in value or "\\" in value or value.lower().endswith(".gguf")):
            raise ValueError("must be a catalog model name (see GET /v1/models) or 'default', not a file path")
        return value

    @field_validator("stop")
    @classmethod
    def _at_most_four_stops(cls, value):
        if isinstance(value, list) and len(value) > 4:
            raise ValueError("at most 4 stop sequences")
        return value

    @field_validator("logit_bias")
    @classmethod
    def _bias_range(cls, value):
        if value and any(not -100 <= bias <= 100 for bias in value.values()):
            raise ValueError("each bias must be between -100 and 100")
        return value

    def stop_list(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)


class EmbeddingRequest(BaseModel):
    """``POST /v1/embeddings``."""

    model_config = ConfigDict(extra="allow")
    model: Optional[str] = None
    input: Union[str, list[str]]
    encoding_format: Literal["float", "base64"] = "float"

    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)
