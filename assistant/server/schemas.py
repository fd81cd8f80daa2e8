"""Request bodies of the OpenAI-compatible API, validated by pydantic. Unknown fields are
accepted and ignored, as OpenAI-compatible servers do; the extensions are typed."""
from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, Union

from pydantic_core import PydanticCustomError
from pydantic import BaseModel, ConfigDict, Field, field_validator

from assistant.router.plan import STRATEGIES
from assistant.server.output_schema import OutputSchema


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


class JSONSchemaFormat(BaseModel):
    """``response_format.json_schema``: the schema the answer must match."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)
    name: str = "response"
    description: Optional[str] = None
    schema_: OutputSchema = Field(alias="schema")
    strict: Optional[bool] = None


class TextFormat(BaseModel):
    type: Literal["text"]


class JSONObjectFormat(BaseModel):
    type: Literal["json_object"]


class JSONSchemaResponseFormat(BaseModel):
    type: Literal["json_schema"]
    json_schema: JSONSchemaFormat


# ``response_format``: plain text (the default), any JSON object, or JSON matching a
# schema; the JSON ones are enforced by grammar-constrained sampling.
ResponseFormat = Annotated[Union[TextFormat, JSONObjectFormat, JSONSchemaResponseFormat], Field(discriminator="type")]


class ChatCompletionRequest(BaseModel):
    """``POST /v1/chat/completions``."""

    model_config = ConfigDict(extra="allow")
    model: Optional[str] = None
    messages: list[MessageIn] = Field(min_length=1)
    temperature: Optional[float] = Field(None, ge=0.0, le=2.0)
    top_p: Optional[float] = Field(None, gt=0.0, le=1.0)
    max_tokens: Optional[int] = Field(None, ge=1, le=2**31 - 1)  # then capped to the room in the context
    max_completion_tokens: Optional[int] = Field(None, ge=1, le=2**31 - 1)
    stream: bool = False
    stream_options: Optional[StreamOptions] = None
    stop: Union[str, list[str], None] = None
    seed: Optional[int] = Field(None, ge=-(2**63), le=2**63 - 1)
    logit_bias: Optional[dict[int, float]] = Field(None, description="token id -> bias in [-100, 100]")
    n: int = Field(1, ge=1, le=1, description="Only one choice is generated.")
    strategy: Literal[STRATEGIES] = "auto"  # type: ignore[valid-type]
    response_format: Optional[ResponseFormat] = None
    # Refused (below, with a clear message) rather than ignored: an answer that silently
    # skips them looks like a model failure. Typed so that the API's schema says so too.
    tools: Optional[list[Any]] = Field(None, max_length=0, description="not supported: must be empty")
    tool_choice: Optional[Literal["none", "auto"]] = Field(None, description="no tool is ever called")
    functions: Optional[list[Any]] = Field(None, max_length=0, description="not supported: must be empty")
    function_call: Optional[Literal["none", "auto"]] = Field(None, description="no function is ever called")
    # "cim": the simulated chip, on a server started with --backend cim (else a 400 says so).
    backend: Literal["cpu", "cim"] = "cpu"

    @field_validator("tools", "functions", mode="before")
    @classmethod
    def _no_tools(cls, value):
        if value:
            raise PydanticCustomError("tools_unsupported", "tools (function calling) are not supported by this "
                                      "server yet; send the request without them")
        return value

    @field_validator("tool_choice", "function_call", mode="before")
    @classmethod
    def _no_tool_choice(cls, value):
        # "auto" without tools cannot call anything: the same as "none"
        if value not in (None, "none", "auto"):
            raise PydanticCustomError("tools_unsupported", "tool_choice other than 'none' is not supported: this "
                                      "server does not call tools")
        return value

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
    input: Union[Annotated[str, Field(min_length=1)], Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]]
    encoding_format: Literal["float", "base64"] = "float"

    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)
