"""What a personalize run did, and how it is shown to a person."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class IndexReport:
    """Counts of one run over one or more roots."""

    roots: list[str] = field(default_factory=list)
    scanned: int = 0
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    deleted: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    skipped_folders: list[tuple[str, str]] = field(default_factory=list)
    ignored_files: int = 0
    chunks_added: int = 0
    chunks_removed: int = 0
    chunks_total: int = 0
    embedded: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict:
        """A JSON-ready summary (benchmarks and tests read it)."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def skip_reasons(self) -> Counter:
        """How many files were skipped for each kind of reason."""
        return Counter(_reason_kind(reason) for _, reason in self.skipped)


def _reason_kind(reason: str) -> str:
    """'too large (123 bytes > ...)' -> 'too large': groups reasons for the summary."""
    return reason.split(" (")[0]


def format_report(report: IndexReport, max_listed: int = 20) -> str:
    """The final summary printed by ``assistant personalize``."""
    lines = [
        f"indexed {', '.join(report.roots)}",
        f"  files scanned: {report.scanned}  new: {report.new}  changed: {report.changed}  "
        f"unchanged: {report.unchanged}  deleted: {report.deleted}  skipped: {len(report.skipped)}",
        f"  chunks: {report.chunks_total} in index (+{report.chunks_added} -{report.chunks_removed}), "
        f"{report.embedded} embedded, {report.seconds:.2f} s"
        + (f" ({report.embedded / report.seconds:.0f} chunks/s)" if report.embedded and report.seconds else ""),
    ]
    if report.skipped:
        kinds = ", ".join(f"{kind}: {count}" for kind, count in sorted(report.skip_reasons().items()))
        lines.append(f"  skipped files by reason: {kinds}")
        for path, reason in report.skipped[:max_listed]:
            lines.append(f"    {path}: {reason}")
        if len(report.skipped) > max_listed:
            lines.append(f"    ... and {len(report.skipped) - max_listed} more")
    loops = [(p, r) for p, r in report.skipped_folders if r != "hidden folder"]
    hidden = len(report.skipped_folders) - len(loops)
    if hidden:
        lines.append(f"  hidden folders left out: {hidden}")
    for path, reason in loops[:max_listed]:
        lines.append(f"    {path}/: {reason}")
    return "\n".join(lines)
