"""Line-based text formats and their headings: plain text, Markdown (``#`` and setext),
Org (``*``) and reStructuredText (underlined titles).

Every parser turns decoded text into ``TextLine`` records that keep the 1-based line
number of the source file, so a chunk can point back to where it came from.
"""
from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class TextLine:
    """One line of a document; ``heading_level`` > 0 marks a heading of that depth."""

    number: int
    text: str
    heading_level: int = 0


class UndecodableError(ValueError):
    """The bytes are not text in an encoding we accept."""


def decode_text(data: bytes) -> str:
    """UTF-8 (with or without BOM), or UTF-16 with a BOM. Anything else is refused rather
    than guessed: a wrong guess would index garbage."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise UndecodableError(f"invalid UTF-16 at byte {exc.start}") from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UndecodableError(f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})") from exc


def parse_plain(text: str) -> list[TextLine]:
    """Plain text: every line is body text."""
    return [TextLine(i, line) for i, line in enumerate(text.splitlines(), start=1)]


_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?[ \t#]*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")


def parse_markdown(text: str) -> list[TextLine]:
    """Markdown: ATX (``# Title``) and setext (underlined) headings; fenced code and a
    leading YAML front matter block are body text, never headings."""
    raw = text.splitlines()
    lines: list[TextLine] = []
    in_fence = False
    start = _front_matter_end(raw)
    for index in range(start, len(raw)):
        line, number = raw[index], index + 1
        if _FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence:
            atx = _ATX.match(line)
            if atx:
                lines.append(TextLine(number, (atx.group(2) or "").strip(), len(atx.group(1))))
                continue
            setext = _SETEXT.match(line)
            if setext and lines and lines[-1].number == number - 1 and lines[-1].text.strip() \
                    and not lines[-1].heading_level:
                previous = lines.pop()
                level = 1 if setext.group(1).startswith("=") else 2
                lines.append(TextLine(previous.number, previous.text.strip(), level))
                continue
        lines.append(TextLine(number, line))
    return lines


def _front_matter_end(raw: list[str]) -> int:
    """Index of the first line after a ``---`` ... ``---`` front matter block (0 if none)."""
    if not raw or raw[0].strip() != "---":
        return 0
    for index in range(1, min(len(raw), 200)):
        if raw[index].strip() in ("---", "..."):
            return index + 1
    return 0


_ORG_HEADING = re.compile(r"^(\*+)\s+(.*)$")
_ORG_KEYWORD = re.compile(r"^#\+(\w+):\s*(.*)$")


def parse_org(text: str) -> list[TextLine]:
    """Org mode: ``*``-stars headings (tags and TODO keywords kept as written);
    ``#+TITLE:`` becomes a top heading and other ``#+KEY:`` settings are dropped."""
    lines: list[TextLine] = []
    for number, line in enumerate(text.splitlines(), start=1):
        heading = _ORG_HEADING.match(line)
        keyword = _ORG_KEYWORD.match(line)
        if heading:
            lines.append(TextLine(number, heading.group(2).strip(), len(heading.group(1))))
        elif keyword and keyword.group(1).lower() == "title":
            lines.append(TextLine(number, keyword.group(2).strip(), 1))
        elif not keyword:
            lines.append(TextLine(number, line))
    return lines


_RST_ADORNMENT = re.compile(r"""^([=\-~^"'`#*+_.:<>!$%&,;/?@\\|])\1{2,}\s*$""")


def parse_rst(text: str) -> list[TextLine]:
    """reStructuredText: a title is a line underlined (and maybe overlined) by a run of one
    punctuation character; levels follow the order in which styles first appear, as
    docutils does."""
    raw = text.splitlines()
    styles: list[tuple[str, bool]] = []
    lines: list[TextLine] = []
    index = 0
    while index < len(raw):
        title_at = _rst_title_at(raw, index)
        if title_at is None:
            lines.append(TextLine(index + 1, raw[index]))
            index += 1
            continue
        title_index, char, overlined, consumed = title_at
        style = (char, overlined)
        if style not in styles:
            styles.append(style)
        lines.append(TextLine(title_index + 1, raw[title_index].strip(), styles.index(style) + 1))
        index += consumed
    return lines


def _rst_title_at(raw: list[str], index: int) -> tuple[int, str, bool, int] | None:
    """If a section title starts at ``index``: (title line index, adornment char,
    overlined?, lines consumed)."""
    line = raw[index]
    nxt = raw[index + 1] if index + 1 < len(raw) else ""
    over = _RST_ADORNMENT.match(line)
    if over and index + 2 < len(raw) and raw[index + 1].strip():
        under = _RST_ADORNMENT.match(raw[index + 2])
        if under and under.group(1) == over.group(1):
            return index + 1, over.group(1), True, 3
    if line.strip() and not line.startswith((" ", "\t")) and not over:
        under = _RST_ADORNMENT.match(nxt)
        if under and len(nxt.rstrip()) >= len(line.rstrip()):
            return index, under.group(1), False, 2
    return None
