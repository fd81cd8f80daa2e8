"""The Notes endpoints over HTTP (``/v1/assistant/sources``, ``search``, ``passage``) against
a real server with an API key and indexed notes, and how the server serves the chat page's
files (strict CSP, no ``/docs``)."""
from __future__ import annotations

import time

import httpx
import pytest

from tests.helpers import indexed_server

KEY = "notes-test-key"
@pytest.fixture(scope="module")
def notes_server(tmp_path_factory):
    with indexed_server(tmp_path_factory, "notes-api", "--api-key", KEY, "--n-ctx", "1024") as (server, notes):
        (notes / "secret.txt.bak").write_text("not indexed: never served")  # a file beside the notes
        yield server, notes


@pytest.fixture(scope="module")
def api(notes_server):
    server, _ = notes_server
    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {KEY}"}, timeout=60) as client:
        yield client


def test_sources_lists_the_indexed_folders_with_counts(notes_server, api):
    _, notes = notes_server
    body = api.get("/v1/assistant/sources").json()
    assert [source["path"] for source in body["data"]] == [str(notes)]
    source = body["data"][0]
    assert source["documents"] == 3 and source["chunks"] == 3 and source["skipped"] == 0
    assert body["documents"] == 3 and body["chunks"] == 3
    assert body["last_indexed_at"] == source["indexed_at"] and 0 < time.time() - body["last_indexed_at"] < 3600


def test_search_ranks_passages_with_their_text(notes_server, api):
    _, notes = notes_server
    body = api.get("/v1/assistant/search", params={"q": "where is the blue bike parked", "k": 2}).json()
    assert body["query"] == "where is the blue bike parked" and len(body["data"]) == 2
    best = body["data"][0]
    assert set(best) == {"path", "heading", "start_line", "end_line", "score", "text"}
    assert best["path"] == str(notes / "bike.md") and best["heading"] == "Bike > Parking"
    assert "rack 14" in best["text"] and best["score"] >= body["data"][1]["score"]


@pytest.mark.parametrize("params, param", [({"q": "bike", "k": 0}, "query.k"), ({"q": "bike", "k": 500}, "query.k"),
                                           ({"k": 3}, "query.q"), ({"q": "  "}, "query")])
def test_search_refuses_bad_queries_as_openai_errors(api, params, param):
    response = api.get("/v1/assistant/search", params=params)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


def test_passage_reads_a_cited_passage_back_from_the_index(notes_server, api):
    _, notes = notes_server
    hit = api.get("/v1/assistant/search", params={"q": "dentist", "k": 1}).json()["data"][0]
    body = api.get("/v1/assistant/passage", params={"path": hit["path"], "start_line": hit["start_line"],
                                                    "end_line": hit["end_line"]}).json()
    assert body["path"] == str(notes / "dentist.md") and body["heading"] == "Dentist"
    assert body["text"] == hit["text"] and "Dr. Raman" in body["text"]
    assert (body["start_line"], body["end_line"]) == (hit["start_line"], hit["end_line"])


@pytest.mark.parametrize("path", ["secret.txt.bak", "../../../../etc/passwd", "/etc/passwd"])
def test_passage_never_reads_a_file_that_is_not_indexed(notes_server, api, path):
    _, notes = notes_server
    full = path if path.startswith("/") else str(notes / path)
    response = api.get("/v1/assistant/passage", params={"path": full, "start_line": 1, "end_line": 5})
    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"] == "passage_not_found"
    assert "never served" not in response.text and "root:" not in response.text


def test_passage_outside_the_indexed_lines_is_404_and_a_bad_range_400(notes_server, api):
    _, notes = notes_server
    far = api.get("/v1/assistant/passage", params={"path": str(notes / "bike.md"), "start_line": 900, "end_line": 901})
    assert far.status_code == 404
    backwards = api.get("/v1/assistant/passage", params={"path": str(notes / "bike.md"), "start_line": 4,
                                                         "end_line": 2})
    assert backwards.status_code == 400


@pytest.mark.parametrize("path", ["/v1/assistant/sources", "/v1/assistant/search?q=bike",
                                  "/v1/assistant/passage?path=/x&start_line=1&end_line=2"])
def test_notes_endpoints_need_the_api_key(notes_server, path):
    server, _ = notes_server
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        response = httpx.get(server.base_url + path, headers=headers, timeout=30)
        assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"


def test_page_files_are_served_with_a_strict_content_security_policy(notes_server):
    server, _ = notes_server
    page = httpx.get(f"{server.base_url}/static/index.html", timeout=30)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "default-src 'none'" in policy and "unsafe" not in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    script = httpx.get(f"{server.base_url}/static/app.js", timeout=30)
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]  # module scripts need it
    assert httpx.get(f"{server.base_url}/static/../pyproject.toml", timeout=30).status_code == 404


def test_swagger_docs_are_off_because_they_need_a_cdn(notes_server):
    server, _ = notes_server
    assert httpx.get(f"{server.base_url}/docs", timeout=30).status_code == 404
    assert httpx.get(f"{server.base_url}/redoc", timeout=30).status_code == 404
