"""Space held in reserve beside the database, given back when a run fills the disk."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

# Given back, the space lets a run that filled the disk record what it did and pause, so that
# nothing it sent goes unrecorded.
RESERVE_NAME = ".mailer-reserve"
RESERVE_BYTES = 1 << 20  # far more than the last batch of results and a paused campaign need


class Reserve:
    """A file of RESERVE_BYTES next to the database, written while there is room."""

    def __init__(self, database_path: Path, size: int = RESERVE_BYTES) -> None:
        self.path = database_path.parent / RESERVE_NAME
        self.size = size

    def hold(self) -> bool:
        """Write the reserve (if it is not there yet); False when there is no room for it."""
        if self.path.is_file() and self.path.stat().st_size >= self.size:
            return True
        try:
            descriptor = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(b"\0" * self.size)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError:
            with contextlib.suppress(OSError):  # a folder made read-only meanwhile
                self.path.unlink(missing_ok=True)
            return False
        return True

    def release(self) -> bool:
        """Give the space back; False when there was none held, or it cannot be removed (its
        folder made read-only meanwhile: that is no reason to fail the run that ends)."""
        try:
            self.path.unlink()
        except OSError:
            return False
        return True
