"""Warnings about a report, as data: the CLI prints them, and --strict turns them into errors."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mailer.errors import FileInputError


@dataclass(frozen=True)
class Notice:
    """Something readers would miss, with where it is written: a warning, not yet an error."""

    path: Path
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else str(self.path)
        return f"{where}: {self.message}"

    def error(self) -> FileInputError:
        """The same, as the error --strict makes of it."""
        return FileInputError(self.path, f"{self.message} (--strict)", self.line)
