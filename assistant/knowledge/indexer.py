"""``personalize``'s pipeline: scan -> compare with the store -> read, parse and chunk
the changed files -> embed -> write, committing a complete generation at the end (and
at checkpoints on long runs, so a crash loses at most ``checkpoint_s`` of work).

An unchanged file costs one ``stat``: size and mtime match what the store remembers. A
file whose mtime changed but whose bytes hash the same is not re-embedded either.
"""
from __future__ import annotations

import hashlib
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from assistant.knowledge.chunker import Chunk, ChunkerConfig, chunk_lines
from assistant.knowledge.encoders import DEFAULT_ENCODER, ENCODERS
from assistant.knowledge.errors import SourceNotFoundError, disk_full, is_disk_full
from assistant.knowledge.layout import IndexLayout
from assistant.knowledge.parsers import ParseError, format_for, parse_document
from assistant.knowledge.report import IndexReport
from assistant.knowledge.scanner import ScanEntry, scan
from assistant.knowledge.store import DocumentRow
from assistant.knowledge.writer import IndexWriter
from assistant.settings import Settings

EMBED_BATCH_CHUNKS = 64  # chunks gathered across files before one encoder call


@dataclass
class _Prepared:
    """A new or changed file, read and chunked, waiting for its vectors."""

    entry: ScanEntry
    previous: Optional[DocumentRow]
    fmt: str
    content_hash: Optional[str]
    chunks: list[Chunk]
    skip_reason: Optional[str] = None


def resolve_root(path: Path | str) -> Path:
    """An absolute, symlink-free path that exists, or SourceNotFoundError."""
    candidate = Path(path).expanduser()
    if not candidate.exists():
        raise SourceNotFoundError(f"no such file or folder: {candidate}", param="path")
    return candidate.resolve()


def embedding_text(path: str, chunk: Chunk) -> str:
    """What the encoder sees: the note's name and heading path, then the text, so that a
    passage under 'Dentist' matches a question about the dentist."""
    title = Path(path).stem.replace("_", " ").replace("-", " ")
    return "\n".join(part for part in (title, chunk.heading, chunk.text) if part)


class Indexer:
    """Runs personalize passes; keeps the encoder loaded between passes (``--watch``)."""

    def __init__(self, settings: Settings, encoder: Optional[str] = None,
                 chunker: ChunkerConfig = ChunkerConfig(), checkpoint_s: float = 60.0,
                 progress: bool = False, n_threads: Optional[int] = None):
        """``encoder``: None keeps the index's own encoder (the default for a new index)."""
        self.settings = settings
        self._requested_encoder = encoder
        self.spec = ENCODERS[encoder or DEFAULT_ENCODER]  # until a run opens the index
        self.chunker = chunker
        self.checkpoint_s = checkpoint_s
        self.progress = progress
        self.n_threads = n_threads
        self.layout = IndexLayout.for_settings(settings)
        self._embedder = None
        self._counter = None

    @property
    def embedder(self):
        """The ONNX encoder, loaded (and exported, the first time) only when needed."""
        if self._embedder is None:
            from assistant.knowledge.embedder import OnnxEmbedder

            self._embedder = OnnxEmbedder.for_settings(self.settings, self.spec.name, self.n_threads)
        return self._embedder

    @property
    def count_tokens(self):
        """Encoder token counts for the chunker (tokenizer only, no model)."""
        if self._counter is None:
            from assistant.knowledge.embedder import TokenCounter

            self._counter = TokenCounter(self.spec)
        return self._counter

    def run(self, paths: list[Path | str]) -> IndexReport:
        """Index (or refresh) each path; one report for all of them."""
        started = time.perf_counter()
        roots = [resolve_root(p) for p in paths]
        report = IndexReport(roots=[str(r) for r in roots])
        try:
            with IndexWriter(self.layout, self._requested_encoder, self.chunker) as writer:
                if writer.spec != self.spec:  # an index built with another registered encoder
                    self.spec, self._embedder = writer.spec, None
                for root in roots:
                    self._index_root(writer, root, report)
                writer.commit(self.chunker)
                report.chunks_total = writer.store.chunk_count()
        except (sqlite3.OperationalError, OSError) as exc:
            if is_disk_full(exc):  # the transaction is rolled back: the previous index stands
                raise disk_full(self.layout.folder) from exc
            raise
        report.seconds = time.perf_counter() - started
        return report

    def _index_root(self, writer: IndexWriter, root: Path, report: IndexReport) -> None:
        writer.begin()
        writer.store.add_source(str(root))
        found = scan(root, self.settings.knowledge_max_file_bytes, exclude=(self.settings.home,),
                     follow_symlinks_out=self.settings.follow_symlinks)
        report.skipped_folders.extend(found.skipped_folders)
        report.ignored_files += found.ignored_files
        known = writer.store.documents_under(str(root))
        todo: list[tuple[ScanEntry, Optional[DocumentRow]]] = []
        for entry in found.entries:
            report.scanned += 1
            row = known.pop(entry.path, None)
            if row and not writer.rechunk_all and row.size == entry.size and row.mtime_ns == entry.mtime_ns:
                report.unchanged += 1
                if row.skip_reason:
                    report.skipped.append((entry.path, row.skip_reason))
                continue
            todo.append((entry, row))
        for row in known.values():  # stored but no longer on disk
            report.chunks_removed += writer.remove_document(row.id)
            report.deleted += 1
        self._process(writer, todo, report)

    def _process(self, writer: IndexWriter, todo: list, report: IndexReport) -> None:
        """Prepare files one by one, embed them in batches; the bar advances as files are
        written (embedding is the slow part), with chunks/s and tqdm's ETA."""
        from tqdm import tqdm

        started = last_commit = time.monotonic()
        pending: list[_Prepared] = []
        with tqdm(total=len(todo), unit="file", disable=not self.progress or not todo, desc="personalize") as bar:
            def flush() -> None:
                self._flush(writer, pending, report)
                bar.update(len(pending))
                pending.clear()
                elapsed = time.monotonic() - started
                bar.set_postfix_str(f"{report.embedded} chunks, {report.embedded / max(elapsed, 1e-9):.0f} chunks/s")

            for entry, row in todo:
                prepared = self._prepare(writer, entry, row, report)
                if prepared is None:
                    bar.update(1)
                    continue
                pending.append(prepared)
                if sum(len(p.chunks) for p in pending) >= EMBED_BATCH_CHUNKS:
                    flush()
                if time.monotonic() - last_commit >= self.checkpoint_s:
                    flush()
                    writer.commit(self.chunker)
                    last_commit = time.monotonic()
            flush()

    def _prepare(self, writer: IndexWriter, entry: ScanEntry, row: Optional[DocumentRow],
                 report: IndexReport) -> Optional[_Prepared]:
        """Read, hash, parse and chunk one file; None when only its mtime changed."""
        fmt = format_for(Path(entry.path).name)
        name = fmt.name if fmt else "unknown"
        if entry.skip_reason:
            return _Prepared(entry, row, name, None, [], entry.skip_reason)
        try:
            with open(entry.path, "rb") as handle:
                data = handle.read(self.settings.knowledge_max_file_bytes + 1)
        except OSError as exc:
            return _Prepared(entry, row, name, None, [], f"unreadable ({exc.strerror or exc})")
        if len(data) > self.settings.knowledge_max_file_bytes:  # grew since the scan
            return _Prepared(entry, row, name, None, [], "too large (grew while scanning)")
        content_hash = hashlib.sha256(data).hexdigest()
        if row and row.content_hash == content_hash and not row.skip_reason and not writer.rechunk_all:
            writer.touch_document(row.id, entry.size, entry.mtime_ns)
            report.unchanged += 1
            return None
        try:
            chunks = chunk_lines(parse_document(fmt, data), self.count_tokens, self.chunker)
        except ParseError as exc:
            return _Prepared(entry, row, name, content_hash, [], str(exc))
        if not chunks:
            return _Prepared(entry, row, name, content_hash, [], "no text")
        return _Prepared(entry, row, name, content_hash, chunks)

    def _flush(self, writer: IndexWriter, pending: list[_Prepared], report: IndexReport) -> None:
        """Embed the pending chunks in one call and write their documents."""
        texts = [embedding_text(p.entry.path, c) for p in pending for c in p.chunks]
        vectors = self.embedder.encode(texts) if texts else None
        offset = 0
        for item in pending:
            if item.previous is not None:
                report.chunks_removed += writer.remove_document(item.previous.id)
            count = len(item.chunks)
            writer.add_document(item.entry.path, item.fmt, item.entry.size, item.entry.mtime_ns,
                                item.content_hash, item.chunks,
                                vectors[offset:offset + count] if count else None, item.skip_reason)
            offset += count
            report.chunks_added += count
            if item.skip_reason:
                report.skipped.append((item.entry.path, item.skip_reason))
            elif item.previous is None:
                report.new += 1
            else:
                report.changed += 1
        report.embedded += len(texts)
