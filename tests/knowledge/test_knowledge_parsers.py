"""Parsers: headings and line numbers of every format, visible HTML text, PDF text, and
the reasons given for files that cannot be read as text."""
from __future__ import annotations

import pytest

from assistant.knowledge.parsers import FORMATS, ParseError, format_for, parse_document
from knowledge_helpers import make_pdf


def headings(lines):
    return [(line.number, line.heading_level, line.text) for line in lines if line.heading_level]


def test_formats_are_found_by_extension_case_insensitively():
    assert format_for("a.MD").name == "markdown"
    assert format_for("notes.markdown").name == "markdown"
    assert format_for("x.htm").name == "html"
    assert format_for("paper.PDF").name == "pdf"
    assert format_for("photo.jpg") is None
    assert format_for(".md") is None  # a hidden file named only by its extension


def test_markdown_headings_skip_code_fences_and_front_matter():
    text = ("---\ntitle: x\n# not a heading\n---\n# Health\n\nSetext title\n============\n\n```\n# code\n```\n"
            "## Dentist ##\nMy dentist is Dr. Raman.\n")
    lines = parse_document(FORMATS["markdown"], text.encode())
    assert headings(lines) == [(5, 1, "Health"), (7, 1, "Setext title"), (13, 2, "Dentist")]
    assert any(line.text == "# code" and not line.heading_level for line in lines)
    assert lines[-1].number == 14 and lines[-1].text == "My dentist is Dr. Raman."


def test_org_headings_and_title():
    text = "#+TITLE: Family\n#+STARTUP: overview\n* Parents\n** Mom :family:\nBirthday June 3.\n"
    lines = parse_document(FORMATS["org"], text.encode())
    assert headings(lines) == [(1, 1, "Family"), (3, 1, "Parents"), (4, 2, "Mom :family:")]
    assert not any("STARTUP" in line.text for line in lines)


def test_rst_underlined_and_overlined_titles_get_levels_by_first_appearance():
    text = "=====\nTitle\n=====\n\nSection\n-------\n\nBody text.\n\nOther\n-----\nMore.\n"
    lines = parse_document(FORMATS["rst"], text.encode())
    assert headings(lines) == [(2, 1, "Title"), (5, 2, "Section"), (10, 2, "Other")]


def test_html_keeps_visible_text_with_source_lines():
    text = ("<html><head><title>T</title><style>p{}</style>\n<script>var secret = 1;</script></head>\n"
            "<body>\n<h1>Food</h1>\n<p>Favourite: <b>Casa</b> Verde &amp; tacos</p>\n"
            "<div hidden>invisible</div><noscript>no</noscript>\n</body></html>")
    lines = parse_document(FORMATS["html"], text.encode())
    texts = [line.text for line in lines]
    assert "Favourite: Casa Verde & tacos" in texts
    assert not any("secret" in t or "invisible" in t or t == "no" or t == "T" for t in texts)
    assert headings(lines) == [(4, 1, "Food")]
    assert next(line.number for line in lines if line.text.startswith("Favourite")) == 5


def test_pdf_text_is_extracted_with_page_headings():
    data = make_pdf([["Vaccination record", "Tetanus booster due in 2031."], ["Second page"]])
    lines = parse_document(FORMATS["pdf"], data)
    assert headings(lines) == [(1, 1, "Page 1"), (4, 1, "Page 2")]
    assert [line.text for line in lines if not line.heading_level] == [
        "Vaccination record", "Tetanus booster due in 2031.", "Second page"]


@pytest.mark.parametrize("data, reason", [
    (b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 9 0 R >>\ngarbage", "corrupt PDF"),
    (b"not a pdf at all", "corrupt PDF"),
])
def test_corrupt_pdf_gives_a_reason(data, reason):
    with pytest.raises(ParseError, match=reason):
        parse_document(FORMATS["pdf"], data)


def test_text_decoding_accepts_utf8_bom_and_utf16_and_refuses_the_rest():
    assert parse_document(FORMATS["text"], "\ufeffcafé ☕".encode("utf-8"))[0].text == "café ☕"
    assert parse_document(FORMATS["text"], "naïve\nzwei".encode("utf-16"))[1].text == "zwei"
    with pytest.raises(ParseError, match="not UTF-8"):
        parse_document(FORMATS["text"], b"caf\xe9 au lait")
    with pytest.raises(ParseError, match="binary"):
        parse_document(FORMATS["markdown"], b"\x89PNG\r\n\x1a\n\x00\x00\x00")
    with pytest.raises(ParseError, match="no text"):
        parse_document(FORMATS["markdown"], b"  \n\n")
