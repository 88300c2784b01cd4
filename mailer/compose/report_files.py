"""The files a report names (images, attachments): read from disk once, or a stored campaign's."""

from __future__ import annotations

import errno
import os
from collections.abc import Mapping
from pathlib import Path


# Read once and recorded, so that a resume and every build process use the same bytes.
class ReportFiles:
    """Files by path, as the report names them (its folder joined with the name). With
    ``stored`` (a stored campaign) only those exist; else the disk is read, each file once."""

    def __init__(self, stored: Mapping[str, bytes] | None = None) -> None:
        self.stored = None if stored is None else dict(stored)
        self.read: dict[str, bytes] = {}

    def is_file(self, path: Path) -> bool:
        if self.stored is not None:
            return str(path) in self.stored
        return path.is_file()

    def exists(self, path: Path) -> bool:
        return self.is_file(path) if self.stored is not None else path.exists()

    def size(self, path: Path) -> int:
        if self.stored is not None or str(path) in self.read:
            return len(self.data(path))
        return path.stat().st_size

    def data(self, path: Path) -> bytes:
        key = str(path)
        if self.stored is not None:
            if key not in self.stored:  # as a missing file says it
                raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), key)
            return self.stored[key]
        if key not in self.read:
            self.read[key] = path.read_bytes()
        return self.read[key]

    def snapshot(self) -> dict[str, bytes]:
        """What a campaign stores: every file its editions read."""
        return dict(self.stored if self.stored is not None else self.read)
