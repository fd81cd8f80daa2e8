"""Helpers for the knowledge tests: installing the exported encoders in a home, texts for
comparing encoders, writing notes, snapshotting a folder, and a minimal valid PDF written by hand (one Helvetica text
line per input line, one page per list) so fixtures need no PDF writer."""
from __future__ import annotations

import os
from pathlib import Path

from assistant.knowledge.encoders import ENCODERS, artifact_dir
from assistant.settings import Settings


def install_encoder(encoder_home: Path, home: Path) -> None:
    """Give ``home`` the exported encoders (int8 default and fp32): symlinks to the shared
    exports (no copy per test; nothing writes there once an export matches)."""
    for spec in ENCODERS.values():
        source = artifact_dir(Settings(home=encoder_home), spec)
        target = artifact_dir(Settings(home=home), spec)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(source, target, target_is_directory=True)


TOPICS = ["dentist appointment", "car insurance", "sister's birthday", "wifi password", "running times",
          "pancake recipe", "passport expiry", "guitar practice", "rent payment", "vaccination record"]


def parity_texts() -> list[str]:
    """100 texts of varied length and script, from a word to a truncated page."""
    texts = []
    for i in range(100):
        topic = TOPICS[i % len(TOPICS)]
        if i % 10 == 0:
            texts.append(topic)
        elif i % 10 == 1:
            texts.append(f"Über {topic}: naïve café — 東京 {i} 🍣")
        elif i % 10 == 2:
            texts.append(" ".join([f"A long note about {topic}, number {i}."] * 60))  # over 256 tokens
        else:
            texts.append(f"Note {i}: remember the {topic} on day {i % 28 + 1}, and call back after {i} minutes.")
    return texts


def write(path: Path, text: str) -> Path:
    """Write a note (creating folders) and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def tree_state(folder: Path) -> dict:
    """Every entry under ``folder`` with its size and mtime: to prove nothing was written."""
    state = {}
    for root, dirs, files in os.walk(folder, followlinks=False):
        for name in dirs + files:
            path = Path(root) / name
            info = path.lstat()
            state[str(path)] = (info.st_size, info.st_mtime_ns, info.st_mode)
    return state


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def make_pdf(pages: list[list[str]]) -> bytes:
    """PDF bytes with the given lines of text on each page (Latin-1 text only)."""
    objects: list[bytes] = []
    page_ids = [4 + 2 * i for i in range(len(pages))]
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    kids = " ".join(f"{pid} 0 R" for pid in page_ids)
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode())
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    for index, lines in enumerate(pages):
        content_id = page_ids[index] + 1
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
                       f"/Resources << /Font << /F1 3 0 R >> >> /Contents {content_id} 0 R >>".encode())
        ops = ["BT", "/F1 12 Tf", "14 TL", "72 720 Td"]
        for line in lines:
            ops.append(f"({_escape(line)}) Tj T*")
        ops.append("ET")
        stream = "\n".join(ops).encode("latin-1")
        objects.append(b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream")
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def index_state(settings: Settings) -> dict:
    """Chunk ids as SQLite, FTS5 and the committed vector file each see them; raises
    AssertionError when they disagree (the index would be inconsistent)."""
    from assistant.knowledge.layout import IndexLayout
    from assistant.knowledge.store import Store
    from assistant.knowledge.writer import load_vectors

    layout = IndexLayout.for_settings(settings)
    store = Store(layout.database, writable=False)
    try:
        chunk_ids = {row[0] for row in store.db.execute("SELECT id FROM chunks")}
        fts_ids = {row[0] for row in store.db.execute("SELECT rowid FROM chunks_fts")}
        vector_rows = {row[0] for row in store.db.execute("SELECT chunk_id FROM chunk_vectors")}
        name = store.get_meta("vector_file")
        assert name is None or (layout.vectors / name).is_file(), "committed vector file is missing"
        vectors = load_vectors(store, layout, 384)
        documents = {row[0] for row in store.db.execute("SELECT path FROM documents WHERE skip_reason IS NULL")}
    finally:
        store.close()
    assert fts_ids == chunk_ids, "FTS rows differ from chunks"
    assert vector_rows == chunk_ids, "stored vectors differ from chunks"
    assert len(vectors) == len(chunk_ids)
    assert all(vectors.contains(cid) for cid in chunk_ids), "a chunk has no vector in the hnswlib file"
    return {"chunks": chunk_ids, "documents": documents, "vectors": vectors}
