"""What ingest tells the user: the error for unreadable input and the report for readable input.

Kept apart from engine.ingest so the reader helpers (engine/ingest_*.py) can share the log
without importing the module that imports them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.errors import UserError

MAX_PROBLEMS = 1_000  # problems listed in the report; the counts stay exact beyond this


class IngestError(UserError):
    """The file cannot be read at all. The message is one line naming the file and the problem."""

    @classmethod
    def about(cls, source: str, problem: str) -> "IngestError":
        return cls(f"{source}: {one_line(problem)}")


def one_line(text: str, limit: int = 300) -> str:
    """Exception texts can span lines; a user-facing message must not."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


@dataclass(frozen=True)
class Problem:
    """One rejected row: where it was (1-based line, or row number for Parquet) and why."""

    line: int | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"line": self.line, "reason": self.reason}


@dataclass(frozen=True)
class IngestReport:
    source: str
    format: str  # "jsonl" | "json" | "csv" | "parquet"
    compressed: bool
    rows_read: int
    rows_kept: int
    rows_rejected: int
    problems: tuple[Problem, ...] = ()  # the first MAX_PROBLEMS; rows_rejected stays exact
    coercions: tuple[str, ...] = ()
    renamed: tuple[str, ...] = ()
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "format": self.format,
            "compressed": self.compressed,
            "rows_read": self.rows_read,
            "rows_kept": self.rows_kept,
            "rows_rejected": self.rows_rejected,
            "problems": [p.to_dict() for p in self.problems],
            "problems_truncated": self.rows_rejected > len(self.problems),
            "coercions": list(self.coercions),
            "renamed": list(self.renamed),
            "seconds": round(self.seconds, 4),
        }


class ReadLog:
    """The mutable tally the readers fill in while reading; frozen into an IngestReport at the end."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.rows_read = 0
        self.rows_rejected = 0
        self.problems: list[Problem] = []
        self.coercions: list[str] = []
        self.renamed: list[str] = []

    def reject(self, line: int | None, reason: str) -> None:
        self.rows_rejected += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(Problem(line, one_line(reason, limit=200)))

    def note(self, line: int | None, reason: str) -> None:
        """A problem that rejected no row (an unclosed array after complete elements)."""
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(Problem(line, one_line(reason, limit=200)))

    def coerced(self, message: str) -> None:
        self.coercions.append(message)

    def rename(self, message: str) -> None:
        self.renamed.append(message)

    def error(self, problem: str) -> IngestError:
        return IngestError.about(self.source, problem)
