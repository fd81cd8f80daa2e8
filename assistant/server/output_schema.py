"""The JSON Schema a client may give for structured output (OpenAI ``response_format``
``json_schema``, Ollama ``format``). The keywords that shape the grammar are typed here,
so a bad value is a clear 400 and the API's own schema says what is accepted; other
keywords (``title``, ``description``, ``$defs``/``$ref``...) pass through to llama.cpp's
converter. Numeric bounds (``minimum``...) pass through too: that converter does not
enforce them."""
from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field

JSON_TYPES = ("object", "array", "string", "number", "integer", "boolean", "null")
# Lengths and item counts become nested grammar groups; llama.cpp's recursive grammar
# parser does not survive some thousands of levels (see models/grammar.py).
MAX_REPEAT = 1000

Repeat = Optional[Annotated[int, Field(ge=0, le=MAX_REPEAT)]]
TypeName = Literal[JSON_TYPES]  # type: ignore[valid-type]


class OutputSchema(BaseModel):
    """A JSON Schema for the answer."""

    model_config = ConfigDict(extra="allow")
    type: Union[TypeName, Annotated[list[TypeName], Field(min_length=1)], None] = None
    properties: Optional[dict[str, OutputSchema]] = None
    required: Optional[list[str]] = None
    items: Optional[OutputSchema] = None
    additionalProperties: Union[bool, OutputSchema, None] = None
    enum: Optional[Annotated[list[Any], Field(min_length=1)]] = None
    anyOf: Optional[Annotated[list[OutputSchema], Field(min_length=1)]] = None
    oneOf: Optional[Annotated[list[OutputSchema], Field(min_length=1)]] = None
    format: Optional[str] = None
    minLength: Repeat = None
    maxLength: Repeat = None
    minItems: Repeat = None
    maxItems: Repeat = None

    def as_json(self) -> dict:
        """The schema as the client wrote it; a typed keyword given as null is left out
        (null means "not given" there), other keywords are passed on as they are."""
        typed = type(self).model_fields
        given = {name: getattr(self, name) for name in self.model_fields_set if name in typed}
        typed_given = {name: _plain(value) for name, value in given.items() if value is not None}
        return {**(self.model_extra or {}), **typed_given}


def _plain(value: Any) -> Any:
    """JSON values from validated ones (nested schemas back to dicts)."""
    if isinstance(value, OutputSchema):
        return value.as_json()
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


OutputSchema.model_rebuild()
