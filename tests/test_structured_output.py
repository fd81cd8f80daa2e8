"""Structured output by grammar-constrained sampling: JSON mode and JSON schemas in the
OpenAI API (``response_format``) and the Ollama API (``format``), against a real server;
what is not supported (tools) is refused with a 400."""
from __future__ import annotations

import json

import jsonschema
import ollama
import openai
import pytest

from assistant.errors import InvalidRequestError
from assistant.models.grammar import MAX_GROUP_NESTING, group_nesting, json_grammar
from tests.conftest import API_KEY

PERSON = {"type": "object",
          "properties": {"name": {"type": "string", "maxLength": 24}, "age": {"type": "integer"}},
          "required": ["name", "age"]}
QUESTION = [{"role": "user", "content": "Invent a person. Give their name and age as JSON."}]


def test_openai_json_object(client):
    response = client.chat.completions.create(model="default", messages=[
        {"role": "user", "content": "Describe a cat as a JSON object."}], max_tokens=256, seed=2,
        response_format={"type": "json_object"})
    assert response.choices[0].finish_reason == "stop"
    assert isinstance(json.loads(response.choices[0].message.content), dict)


def test_openai_json_schema(client):
    response = client.chat.completions.create(model="default", messages=QUESTION, max_tokens=256, seed=1,
                                              response_format={"type": "json_schema", "json_schema": {
                                                  "name": "person", "schema": PERSON, "strict": True}})
    assert response.choices[0].finish_reason == "stop"
    jsonschema.validate(json.loads(response.choices[0].message.content), PERSON)


def test_openai_json_schema_streamed(client):
    stream = client.chat.completions.create(model="default", messages=QUESTION, max_tokens=256, seed=5, stream=True,
                                            response_format={"type": "json_schema", "json_schema": {
                                                "name": "person", "schema": PERSON}})
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    jsonschema.validate(json.loads(text), PERSON)


def test_ollama_format_schema_and_json(server):
    client = ollama.Client(host=server.base_url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=120)
    answer = client.chat(model="smollm2-135m-instruct", messages=QUESTION, format=PERSON,
                         options={"num_predict": 256, "seed": 1})
    assert answer.done_reason == "stop"
    jsonschema.validate(json.loads(answer.message.content), PERSON)
    answer = client.generate(model="smollm2-135m-instruct", prompt="Describe a cat as a JSON object.",
                             format="json", options={"num_predict": 256, "seed": 2})
    assert answer.done_reason == "stop" and isinstance(json.loads(answer.response), dict)


@pytest.mark.parametrize("extra, param", [
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]}, "tools"),
    ({"tool_choice": "required"}, "tool_choice"),
    ({"functions": [{"name": "f"}]}, "functions"),
    ({"response_format": {"type": "xml"}}, "response_format"),
    ({"response_format": {"type": "json_schema"}}, "response_format"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "nonsense"}}}},
     "response_format"),
])
def test_openai_refuses_what_it_cannot_honour(client, extra, param):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="default", messages=QUESTION, max_tokens=4, extra_body=extra)
    assert caught.value.status_code == 400 and caught.value.body["param"].startswith(param)


def test_ollama_refuses_what_it_cannot_honour(server):
    client = ollama.Client(host=server.base_url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60)
    for bad, said in (({"format": "xml"}, "format"), ({"format": {"type": "nonsense"}}, "format"),
                      ({"format": {"maxLength": 3}}, "schema"),
                      ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
                      ({"think": True}, "think")):
        with pytest.raises(ollama.ResponseError) as caught:
            client._request_raw("POST", "/api/chat", json={"model": "smollm2-135m-instruct", "messages": QUESTION,
                                                            **bad})
        assert caught.value.status_code == 400 and said in caught.value.error


def test_literals_with_quotes_and_backslashes_parse():
    # llama-cpp-python's converter left backslashes unescaped: a schema like this one made
    # a grammar llama.cpp could not parse
    from llama_cpp import Llama

    from assistant.models.catalog import resolve_model
    from assistant.models.grammar import compile_grammar
    from assistant.settings import Settings

    vocab = Llama(model_path=str(resolve_model("default", Settings()).path), vocab_only=True, verbose=False)
    text = json_grammar({"type": "object", "properties": {'say "hi"\\': {"enum": ['a"b', "c\\d", {'"': None}]}}})
    assert compile_grammar(text, vocab.model) is not None


def test_tool_choice_none_is_accepted(client):
    response = client.chat.completions.create(model="default", messages=QUESTION, max_tokens=2, tool_choice="none")
    assert response.choices[0].message.content is not None


def test_grammar_keeps_strings_strict_json():
    # llama.cpp's converter lets raw control characters into strings; strict parsers refuse them
    text = json_grammar({"type": "object", "properties": {"a": {"type": "string"}}})
    char_rule = next(line for line in text.splitlines() if line.startswith("char ::="))
    assert "\\x00-\\x1F" in char_rule


def test_grammar_refuses_schemas_that_would_crash_llama_cpp():
    # a maxLength of 20000 nests groups deeper than llama.cpp's recursive parser survives
    with pytest.raises(InvalidRequestError):
        json_grammar({"type": "string", "maxLength": 20_000}, param="format")
    assert group_nesting(json_grammar({"type": "string", "maxLength": 500})) <= MAX_GROUP_NESTING
    assert group_nesting('root ::= "((" [(] (a (b))') == 2
    with pytest.raises(InvalidRequestError):
        json_grammar(["not", "a", "schema"])
