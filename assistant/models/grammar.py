"""Grammar-constrained sampling for structured output: GBNF text for "any JSON object" or
for a JSON schema (llama.cpp's own converter), and the one place that hands a grammar to
llama.cpp. Every edge (OpenAI ``response_format``, Ollama ``format``) goes through here."""
from __future__ import annotations

import json
import re
from typing import Any, Optional

from assistant.errors import InvalidRequestError

# llama.cpp's schema converter lets any character but '"' and '\' into a string, raw
# newlines and other control characters included, which strict JSON parsers refuse.
# This rule keeps strings valid JSON (the same class as llama.cpp's json.gbnf).
_LOOSE_CHAR = 'char ::= [^"\\\\] |'
_JSON_CHAR = 'char ::= [^"\\\\\\x7F\\x00-\\x1F] |'
_ROOT_RULE = re.compile(r"^root ::=\s*(\S.*)?$", re.MULTILINE)
# llama.cpp parses a grammar recursively: groups nested some thousands deep (a schema's
# maxLength: 20000) overflow its stack and kill the process, so deeper ones are refused.
MAX_GROUP_NESTING = 1024
MAX_GRAMMAR_CHARS = 256 * 1024


def group_nesting(text: str) -> int:
    """How deeply ``( ... )`` groups nest in GBNF ``text`` (literals and classes skipped)."""
    deepest = depth = 0
    closing = None  # the quote or bracket that ends the literal or class we are in
    escaped = False
    for char in text:
        if closing is not None:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == closing:
                closing = None
        elif char in "\"[":
            closing = "\"" if char == "\"" else "]"
        elif char == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif char == ")":
            depth -= 1
    return deepest


def schema_to_gbnf(schema: dict) -> str:
    """llama.cpp's JSON-schema-to-grammar converter (llama-cpp-python's port, pinned with
    it), with literals escaped fully: the port escapes quotes and newlines but not
    backslashes, so a property name or enum value holding a quote or a backslash made a
    grammar llama.cpp cannot parse (llama.cpp's own C++ converter escapes them)."""
    from llama_cpp.llama_grammar import SchemaConverter

    class Converter(SchemaConverter):
        def _format_literal(self, literal: str) -> str:
            escaped = (literal.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "\\r")
                       .replace("\n", "\\n"))
            return f'"{escaped}"'

    converter = Converter(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)
    converter.visit(converter.resolve_refs(schema, "request"), "")
    return converter.format_grammar()


def json_grammar(schema: Optional[Any] = None, param: str = "response_format") -> str:
    """GBNF text that admits a JSON object (``schema=None``) or JSON matching ``schema``;
    InvalidRequestError (400, naming ``param``) for a schema the converter cannot express."""
    if schema is None:
        schema = {"type": "object"}
    if not isinstance(schema, dict):
        raise InvalidRequestError("the JSON schema must be an object", param=param, code="invalid_schema")
    try:
        text = schema_to_gbnf(json.loads(json.dumps(schema)))  # a private copy: resolving refs edits it
    except Exception as exc:  # noqa: BLE001 - third-party converter: any failure means "cannot express"
        raise InvalidRequestError(f"unsupported JSON schema ({exc}): give each schema a 'type' (or an enum, const, "
                                  "anyOf or $ref)", param=param, code="invalid_schema") from exc
    if len(text) > MAX_GRAMMAR_CHARS or group_nesting(text) > MAX_GROUP_NESTING:
        raise InvalidRequestError("the JSON schema is too large to enforce (lower its maxLength, maxItems or "
                                  "pattern repetitions)", param=param, code="invalid_schema")
    root = _ROOT_RULE.search(text)
    if root is None or not root.group(1):
        # e.g. an unknown string "format": the converter emits an empty root, which would
        # only let the model stop at once.
        raise InvalidRequestError("unsupported JSON schema: it admits no JSON value this server can generate",
                                  param=param, code="invalid_schema")
    return text.replace(_LOOSE_CHAR, _JSON_CHAR)


def compile_grammar(text: str, llama_model) -> "object":
    """The ``llama_cpp.LlamaGrammar`` for ``text``, checked first with llama.cpp's own parser
    against ``llama_model`` (a ``llama_model_p``): llama-cpp-python hands an unparsable
    grammar to the sampler chain unchecked, which crashes the process."""
    import llama_cpp

    vocab = llama_cpp.llama_model_get_vocab(llama_model)
    probe = llama_cpp.llama_sampler_init_grammar(vocab, text.encode("utf-8"), b"root")
    if not probe:
        raise InvalidRequestError("the output grammar could not be parsed by llama.cpp", code="invalid_grammar")
    llama_cpp.llama_sampler_free(probe)
    return llama_cpp.LlamaGrammar.from_string(text, verbose=False)
