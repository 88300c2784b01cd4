"""The workspace's private places: folders mailer creates are 0700, the files it writes 0600."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

FOLDER_MODE = 0o700
FILE_MODE = 0o600


def private_folder(folder: Path) -> None:
    """Create ``folder`` and each missing parent with mode 0700; existing folders keep theirs."""
    missing = []
    while not folder.exists() and folder.parent != folder:
        missing.append(folder)
        folder = folder.parent
    for path in reversed(missing):
        try:
            path.mkdir(mode=FOLDER_MODE)
        except FileExistsError:
            continue  # made meanwhile by another process, with its own mode


def private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 unless it exists (an existing file keeps its mode)."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))


def replacing_mode(path: Path) -> int:
    """The mode for a new file that replaces ``path``: 0600, or tighter if ``path`` was."""
    try:
        return FILE_MODE & os.stat(path).st_mode
    except FileNotFoundError:
        return FILE_MODE


def open_private(path: Path, mode: int = FILE_MODE) -> int:
    """A new file descriptor of ``path`` for writing, created with ``mode`` (0600): a stale file
    of that name (a crashed run's part file) is removed first, so it cannot keep a looser mode."""
    path.unlink(missing_ok=True)
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` whole, through a part file of mode 0600 (or the tighter mode
    of the file it replaces): a failure (OSError as it comes) leaves no half-written file."""
    partial = path.with_name(path.name + ".part")
    try:
        with os.fdopen(open_private(partial, replacing_mode(path)), "wb") as out:
            out.write(data)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
