"""Write ``manifest.json`` for the router evaluation set: counts per level and split, the
sha256 of the test split's lines of ``questions.jsonl`` and of the notes corpus.

    python benchmarks/router/eval/build_manifest.py           # (re)write manifest.json
    python benchmarks/router/eval/build_manifest.py --check   # exit 1 if it is out of date

``test_sha256`` is the sha256 of the test split's lines exactly as stored (each with its
trailing newline, in file order); the same as
``grep '"split": "test"' questions.jsonl | sha256sum``. Any edit of a test question, or a
question moved into or out of the test split, changes it: tests/router/test_eval_set.py
compares it with the file, so such an edit cannot go unnoticed.

The split of a question is a function of its id alone (``split_of``): adding questions
never moves an existing one between dev and test.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
QUESTIONS = HERE / "questions.jsonl"
NOTES = HERE / "notes"
MANIFEST = HERE / "manifest.json"

LEVELS = ("general", "easy", "moderate", "hard")
SPLITS = ("dev", "test")
# Fixed once, when the set was first written (chosen so that every level's dev share is
# within two questions of a third); never change it: that would reshuffle the splits.
SPLIT_SALT = "router-eval-v1:"
NOTE_SUFFIXES = (".md", ".txt", ".org", ".rst", ".html", ".htm", ".pdf")


def split_of(question_id: str) -> str:
    """``dev`` for about a third of the ids, ``test`` for the rest, by a hash of the id."""
    digest = hashlib.sha256((SPLIT_SALT + question_id).encode("utf-8")).hexdigest()
    return "dev" if int(digest, 16) % 3 == 0 else "test"


def read_lines(path: Path = QUESTIONS) -> list[str]:
    """The file's lines, each with its newline (the last one gets one if it lacks it)."""
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    return [line for line in lines if line.strip()]


def test_sha256(lines: list[str]) -> str:
    """sha256 of the test split's lines, in file order."""
    digest = hashlib.sha256()
    for line in lines:
        if json.loads(line)["split"] == "test":
            digest.update(line.encode("utf-8"))
    return digest.hexdigest()


def note_paths(root: Path = NOTES) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in NOTE_SUFFIXES)


def notes_sha256(root: Path = NOTES) -> str:
    """sha256 over every note's relative path and content hash, in path order."""
    digest = hashlib.sha256()
    for path in note_paths(root):
        relative = path.relative_to(root).as_posix()
        digest.update(f"{relative}\0{hashlib.sha256(path.read_bytes()).hexdigest()}\n".encode("utf-8"))
    return digest.hexdigest()


def build(questions: Path = QUESTIONS, notes: Path = NOTES) -> dict:
    lines = read_lines(questions)
    records = [json.loads(line) for line in lines]
    counts = {level: {split: 0 for split in SPLITS} for level in LEVELS}
    for record in records:
        counts[record["level"]][record["split"]] += 1
    folders: dict[str, int] = {}
    formats: dict[str, int] = {}
    paths = note_paths(notes)
    for path in paths:
        relative = path.relative_to(notes)
        folders[relative.parts[0]] = folders.get(relative.parts[0], 0) + 1
        formats[path.suffix.lstrip(".").lower()] = formats.get(path.suffix.lstrip(".").lower(), 0) + 1
    return {
        "questions": len(records),
        "counts": counts,
        "split_rule": f"dev if int(sha256('{SPLIT_SALT}' + id), 16) % 3 == 0 else test",
        "test_sha256": test_sha256(lines),
        "notes": len(paths),
        "notes_per_folder": dict(sorted(folders.items())),
        "notes_per_format": dict(sorted(formats.items())),
        "notes_sha256": notes_sha256(notes),
    }


def render(manifest: dict) -> str:
    return json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if manifest.json is out of date")
    args = parser.parse_args(argv)
    text = render(build())
    if args.check:
        current = MANIFEST.read_text(encoding="utf-8") if MANIFEST.exists() else ""
        if current != text:
            print("manifest.json is out of date: run build_manifest.py", file=sys.stderr)
            return 1
        print("manifest.json is up to date")
        return 0
    MANIFEST.write_text(text, encoding="utf-8")
    print(f"wrote {MANIFEST} (test_sha256 {json.loads(text)['test_sha256']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
