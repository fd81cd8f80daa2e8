"""Retrieval over HTTP: sources in responses (first chunk when streaming), embeddings, and
the errors when there is nothing to retrieve from."""
from __future__ import annotations

import math

import openai
import pytest

from tests.conftest import API_KEY
from tests.helpers import indexed_server

@pytest.fixture(scope="module")
def rag_server(tmp_path_factory):
    with indexed_server(tmp_path_factory, "rag", "--n-ctx", "1024", "--profile", "raspberry-pi-4-4gb") as served:
        yield served


@pytest.fixture(scope="module")
def rag_client(rag_server):
    return openai.OpenAI(base_url=f"{rag_server[0].base_url}/v1", api_key="unused", max_retries=0, timeout=300)


def test_rag_answer_cites_the_right_note(rag_server, rag_client):
    _, notes = rag_server
    answer = rag_client.chat.completions.create(
        model="default", messages=[{"role": "user", "content": "Who is my dentist?"}], max_tokens=24,
        temperature=0.0, extra_body={"strategy": "rag"})
    extra = answer.model_extra
    assert extra["plan"]["strategy"] == "rag" and extra["plan"]["k"] == 3  # the Pi 4 4 GB profile's budget
    sources = extra["sources"]
    assert sources and sources[0]["path"] == str(notes / "dentist.md")
    assert set(sources[0]) == {"path", "heading", "start_line", "end_line", "score"}
    assert sources[0]["start_line"] >= 1 and sources[0]["end_line"] >= sources[0]["start_line"]


def test_auto_uses_the_notes_and_streams_sources_first(rag_server, rag_client):
    _, notes = rag_server
    chunks = list(rag_client.chat.completions.create(
        model="default", messages=[{"role": "user", "content": "Where is the blue bike parked?"}], max_tokens=16,
        stream=True, temperature=0.0))
    first = chunks[0].model_extra
    assert first["plan"]["strategy"] == "rag"
    assert first["sources"][0]["path"] == str(notes / "bike.md")
    assert all("sources" not in c.model_extra for c in chunks[1:])


def test_base_strategy_skips_retrieval(rag_client):
    answer = rag_client.chat.completions.create(
        model="default", messages=[{"role": "user", "content": "Who is my dentist?"}], max_tokens=4,
        extra_body={"strategy": "base"})
    assert answer.model_extra["plan"]["strategy"] == "base" and answer.model_extra["sources"] == []


def test_embeddings_in_openai_format(rag_client):
    result = rag_client.embeddings.create(model="default", input=["my dentist", "bike parking", "tomatoes"])
    assert [d.index for d in result.data] == [0, 1, 2]
    for item in result.data:
        assert len(item.embedding) == 384
        assert math.isclose(sum(x * x for x in item.embedding), 1.0, rel_tol=1e-3)
    as_floats = rag_client.embeddings.create(model="default", input="my dentist", encoding_format="float")
    assert as_floats.data[0].embedding == pytest.approx(result.data[0].embedding, abs=1e-6)


def test_rag_without_an_index_is_a_clear_400(client):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="default", messages=[{"role": "user", "content": "x"}],
                                       extra_body={"strategy": "rag"})
    assert info.value.body["code"] == "no_index"
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="default", messages=[{"role": "user", "content": "x"}],
                                       extra_body={"strategy": "adapter"})
    assert info.value.body["code"] == "no_adapter"


def test_embeddings_reject_bad_input(server):
    import httpx

    response = httpx.post(f"{server.base_url}/v1/embeddings", json={"input": []},
                          headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60)
    assert response.status_code == 400 and response.json()["error"]["param"] == "input"
