"""The router evaluation set (benchmarks/router/eval/): a notes corpus and questions at four
mechanically defined levels. Fast checks, no model: sizes, references, the level rules,
answerability, no question copying a note (no shared run of 5 words), the dev/test split
and the manifest that pins the test split's hash."""
from __future__ import annotations

import html
import importlib.util
import json
import re
from functools import lru_cache
from html.parser import HTMLParser
from pathlib import Path

import pytest

from assistant.study.scoring import contains, normalise  # the scoring rule under test

ROOT = Path(__file__).resolve().parents[2]
EVAL = ROOT / "benchmarks" / "router" / "eval"
NOTES = EVAL / "notes"
QUESTIONS = EVAL / "questions.jsonl"
MANIFEST = EVAL / "manifest.json"

LEVELS = ("general", "easy", "moderate", "hard")
KINDS = {
    "general": {"fact", "arithmetic", "definition"},
    "easy": {"title", "folder", "category"},
    "moderate": {"fact"},
    "hard": {"update", "comparison", "summary", "count", "multi"},
}
NOTE_SUFFIXES = {".md", ".txt", ".org", ".rst", ".html", ".htm"}
RUN = 5  # words: a question may share no run this long with any note


# --- reading notes (plain text; HTML with its tags stripped) ---------------------------------

class _HTMLText(HTMLParser):
    """All text of a page except scripts and styles; the first <h1> is its title."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title = ""
        self._skip = 0
        self._in_h1 = False
        self._h1: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self._skip += 1
        elif tag == "h1" and not self.title:
            self._in_h1 = True
        if tag in ("p", "li", "h1", "h2", "h3", "tr", "br", "div", "ul", "table"):
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in ("script", "style") and self._skip:
            self._skip -= 1
        elif tag == "h1" and self._in_h1:
            self._in_h1 = False
            self.title = " ".join("".join(self._h1).split())
        if tag in ("td", "th"):
            self.parts.append(" ")

    def handle_data(self, data):
        if self._skip:
            return
        self.parts.append(data)
        if self._in_h1:
            self._h1.append(data)


@lru_cache(maxsize=None)
def _html(path: Path) -> _HTMLText:
    parser = _HTMLText()
    parser.feed(path.read_text(encoding="utf-8"))
    parser.close()
    return parser


def note_text(path: Path) -> str:
    if path.suffix.lower() in (".html", ".htm"):
        return html.unescape("".join(_html(path).parts))
    return path.read_text(encoding="utf-8")


_ATX = re.compile(r"^ {0,3}#{1,6}[ \t]+(.+?)[ \t#]*$")
_ADORNMENT = re.compile(r"""^([=\-~^"'`#*+_.:<>!$%&,;/?@\\|])\1{2,}\s*$""")
_CATEGORY = re.compile(r"^\s*Category:\s*(.+?)\s*$", re.I | re.M)


def note_title(path: Path) -> str:
    """The note's title: its first heading (Markdown ``#``, Org ``#+TITLE:`` or ``*``,
    an underlined reStructuredText title, an HTML ``<h1>``), or a text file's first line."""
    suffix = path.suffix.lower()
    if suffix in (".html", ".htm"):
        return _html(path).title
    lines = path.read_text(encoding="utf-8").splitlines()
    if suffix == ".md":
        for line in lines:
            match = _ATX.match(line)
            if match:
                return match.group(1).strip()
    elif suffix == ".org":
        for line in lines:
            if line.lower().startswith("#+title:"):
                return line.split(":", 1)[1].strip()
            if re.match(r"^\*+\s+\S", line):
                return line.lstrip("*").strip()
    elif suffix == ".rst":
        for i, line in enumerate(lines[:-1]):
            if line.strip() and not _ADORNMENT.match(line) and _ADORNMENT.match(lines[i + 1]):
                return line.strip()
    else:
        for line in lines:
            if line.strip():
                return line.strip()
    return ""


def note_category(path: Path) -> str:
    match = _CATEGORY.search(note_text(path))
    return match.group(1) if match else ""


def note_folder(relative: str) -> str:
    return relative.split("/")[0]


# --- word runs (normalisation and containment: the product's scorer) -----------------------------------------------

def runs(text: str, n: int = RUN) -> set[tuple[str, ...]]:
    words = normalise(text).split()
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def shared_runs(question: str, note_runs: set[tuple[str, ...]]) -> set[tuple[str, ...]]:
    return runs(question) & note_runs


# --- loading ------------------------------------------------------------------------------------

@lru_cache(maxsize=None)
def notes() -> dict[str, Path]:
    return {p.relative_to(NOTES).as_posix(): p for p in sorted(NOTES.rglob("*"))
            if p.is_file() and p.suffix.lower() in NOTE_SUFFIXES}


@lru_cache(maxsize=None)
def texts() -> dict[str, str]:
    return {rel: note_text(path) for rel, path in notes().items()}


@lru_cache(maxsize=None)
def all_note_runs() -> frozenset:
    found: set[tuple[str, ...]] = set()
    for text in texts().values():
        found |= runs(text)
    return frozenset(found)


@lru_cache(maxsize=None)
def lines() -> tuple[str, ...]:
    raw = QUESTIONS.read_text(encoding="utf-8").splitlines(keepends=True)
    return tuple(line for line in raw if line.strip())


@lru_cache(maxsize=None)
def questions() -> tuple[dict, ...]:
    return tuple(json.loads(line) for line in lines())


def by_level(level: str) -> list[dict]:
    return [q for q in questions() if q["level"] == level]


def builder():
    spec = importlib.util.spec_from_file_location("router_eval_build_manifest", EVAL / "build_manifest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- the corpus ---------------------------------------------------------------------------------

def test_corpus_has_at_least_100_short_notes_in_topic_folders_and_mixed_formats():
    found = notes()
    assert len(found) >= 100
    for rel, path in found.items():
        assert "/" in rel, f"{rel} is not in a topic folder"
        count = len(path.read_text(encoding="utf-8").strip().splitlines())
        assert 3 <= count <= 25, f"{rel} has {count} lines"
        assert note_title(path), f"{rel} has no title"
    folders = {note_folder(rel) for rel in found}
    assert {"work", "home", "health", "travel", "hobbies", "projects"} <= folders
    formats = {Path(rel).suffix for rel in found}
    assert {".md", ".txt", ".org", ".rst", ".html"} <= formats


# --- the questions ------------------------------------------------------------------------------

def test_schema_ids_and_levels():
    ids = [q["id"] for q in questions()]
    assert len(ids) == len(set(ids)), "duplicate ids"
    wordings = [normalise(q["question"]) for q in questions()]
    assert len(wordings) == len(set(wordings)), "the same question twice"
    for q in questions():
        assert {"id", "level", "question", "answers", "key_facts", "notes", "split", "kind"} <= set(q), q
        assert q["level"] in LEVELS, q
        assert q["kind"] in KINDS[q["level"]], q
        assert q["split"] in ("dev", "test"), q
        assert isinstance(q["question"], str) and len(q["question"].split()) >= 3, q
        assert (q["answers"] is None) != (q["key_facts"] is None), f"{q['id']}: answers xor key_facts"
        expected = q["answers"] if q["answers"] is not None else q["key_facts"]
        assert expected and all(isinstance(a, str) and normalise(a) for a in expected), q
        assert isinstance(q["notes"], list), q
        if q["kind"] in ("summary", "comparison") and q["key_facts"] is None:
            assert q["answers"], q
    for level in LEVELS:
        assert len(by_level(level)) >= 60, f"{level}: {len(by_level(level))} questions"


def test_every_referenced_note_exists():
    found = notes()
    for q in questions():
        for rel in q["notes"]:
            assert rel in found, f"{q['id']}: no note {rel}"
        assert len(q["notes"]) == len(set(q["notes"])), q["id"]


def test_general_questions_need_no_note_and_have_short_answers():
    for q in by_level("general"):
        assert q["notes"] == [], q["id"]
        assert q["answers"], q["id"]


def test_easy_answers_are_a_real_title_folder_or_category_of_the_note():
    found = notes()
    titles = {normalise(note_title(p)) for p in found.values()}
    folders = {normalise(note_folder(rel)) for rel in found}
    categories = {normalise(note_category(p)) for p in found.values()} - {""}
    for q in by_level("easy"):
        assert len(q["notes"]) == 1 and q["answers"], q["id"]
        rel = q["notes"][0]
        actual = {"title": note_title(found[rel]), "folder": note_folder(rel),
                  "category": note_category(found[rel])}[q["kind"]]
        assert actual, f"{q['id']}: {rel} has no {q['kind']}"
        assert normalise(q["answers"][0]) == normalise(actual), f"{q['id']}: {q['answers'][0]!r} != {actual!r}"
        assert normalise(actual) in {"title": titles, "folder": folders, "category": categories}[q["kind"]]
        for answer in q["answers"][1:]:
            assert contains(actual, answer), f"{q['id']}: {answer!r} is not part of {actual!r}"


def test_moderate_questions_have_one_note_that_holds_the_answer():
    for q in by_level("moderate"):
        assert len(q["notes"]) == 1, q["id"]
        assert q["answers"], q["id"]
        text = texts()[q["notes"][0]]
        assert any(contains(text, a) for a in q["answers"]), f"{q['id']}: no answer found in {q['notes'][0]}"


def test_hard_questions_need_several_notes_or_a_summary():
    for q in by_level("hard"):
        assert len(q["notes"]) >= 2 or q["kind"] in ("summary", "comparison"), q["id"]
        assert q["notes"], q["id"]
        union = "\n".join(texts()[rel] for rel in q["notes"])
        for fact in q["key_facts"] or []:
            assert contains(union, fact), f"{q['id']}: key fact {fact!r} is in none of its notes"


def test_updates_name_the_newer_note_and_what_it_supersedes():
    updates = [q for q in questions() if q["kind"] == "update"]
    assert len(updates) >= 10
    for q in updates:
        assert len(q["notes"]) >= 2 and q.get("newer_note") in q["notes"], q["id"]
        assert q.get("superseded"), q["id"]
        newer = texts()[q["newer_note"]]
        older = "\n".join(texts()[rel] for rel in q["notes"] if rel != q["newer_note"])
        assert any(contains(newer, a) for a in q["answers"]), f"{q['id']}: answer not in the newer note"
        assert any(contains(older, s) for s in q["superseded"]), f"{q['id']}: superseded fact not in the older note"


def test_the_run_check_catches_a_copied_sentence():
    """The check below must fail a question that quotes a note."""
    rel, text = next(iter(texts().items()))
    words = normalise(text).split()
    copied = "What about " + " ".join(words[2:2 + RUN]) + "?"
    assert shared_runs(copied, all_note_runs())
    assert not shared_runs("Which colourless aardvark juggles seven quiet umbrellas?", all_note_runs())


def test_no_question_shares_a_run_of_five_words_with_any_note():
    note_runs = all_note_runs()
    offending = {q["id"]: sorted(" ".join(r) for r in shared_runs(q["question"], note_runs))
                 for q in questions()}
    offending = {k: v for k, v in offending.items() if v}
    assert not offending, f"questions copying a note's wording: {offending}"


# --- split and manifest -------------------------------------------------------------------------

def test_split_is_a_third_dev_by_a_hash_of_the_id():
    split_of = builder().split_of
    for q in questions():
        assert q["split"] == split_of(q["id"]), f"{q['id']}: split {q['split']} != {split_of(q['id'])}"
    for level in LEVELS:
        level_questions = by_level(level)
        dev = sum(q["split"] == "dev" for q in level_questions)
        assert abs(dev - len(level_questions) / 3) <= 3, f"{level}: {dev} dev of {len(level_questions)}"
    dev_wording = {normalise(q["question"]) for q in questions() if q["split"] == "dev"}
    assert not dev_wording & {normalise(q["question"]) for q in questions() if q["split"] == "test"}


def test_manifest_matches_the_questions_and_notes():
    manifest = json.loads(MANIFEST.read_text(encoding="utf-8"))
    digest = __import__("hashlib").sha256()
    for line in lines():
        if json.loads(line)["split"] == "test":
            digest.update((line if line.endswith("\n") else line + "\n").encode("utf-8"))
    assert manifest["test_sha256"] == digest.hexdigest(), \
        "the test split changed: run benchmarks/router/eval/build_manifest.py only if that was intended"
    for level in LEVELS:
        for split in ("dev", "test"):
            count = sum(q["level"] == level and q["split"] == split for q in questions())
            assert manifest["counts"][level][split] == count, f"{level}/{split}"
    assert manifest["questions"] == len(questions())
    assert manifest == builder().build(), "manifest.json is out of date: run build_manifest.py"


@pytest.mark.parametrize("question,expected", [
    ("The standup is at 9:45!", "9:45"),
    ("It's Gull's Rest.", "gulls rest"),
    ("about 1,287 pounds", "£1,287"),
])
def test_containment_rule(question, expected):
    assert contains(question, expected)
    assert not contains("15 mg", "5 mg")


def test_calibration_probes_are_never_evaluation_questions():
    """Issue 14: the router's general probes (shipped) and the probes generated from the
    notes are not the evaluation set's questions: no equal wording, and no probe that shares
    a run of 5 words with a question *and* expects one of its answers (sharing a template
    such as "what is the capital of" while asking about another country is allowed)."""
    from assistant.learn.data import NoteChunk
    from assistant.study.probes import GENERAL_PROBES, Probe, build_probes

    chunks = [NoteChunk(str(path), note_title(path), note_text(path)) for path in notes().values()]
    probes = [Probe("general", q, e, "span") for q, e in GENERAL_PROBES] + build_probes(chunks, 10_000)
    assert len(GENERAL_PROBES) >= 10
    facts = [p for p in probes if p.level == "moderate"]
    assert len(facts) >= 10 and all(not runs(p.question) & runs(note_text(Path(p.path))) for p in facts)
    evaluation = questions()
    wordings = {normalise(q["question"]) for q in evaluation}
    for probe in probes:
        assert normalise(probe.question) not in wordings, probe.question
        expected = {normalise(e) for e in probe.expected}
        for q in evaluation:
            if runs(probe.question) & runs(q["question"]):
                accepted = {normalise(a) for a in (q["answers"] or q["key_facts"])}
                assert not expected & accepted, (probe.question, q["id"])
            numeric = any(e.isdigit() for e in expected)  # "7" / "seven": numbers coincide across facts
            if probe.level == q["level"] == "general" and not numeric:  # the same fact reworded
                assert not expected & {normalise(a) for a in q["answers"]}, (probe.question, q["id"])
