"""One sending process per campaign: an flock beside a SQLite file, dropped if the process dies."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mailer.errors import CampaignLocked, InputError


@contextmanager
def one_sender(database_path: Path, campaign_id: int, *, shared: bool = False) -> Iterator[None]:
    """Hold the campaign's lock (``shared``: one of its workers), or raise CampaignLocked when
    another process holds it the other way."""
    path = database_path.parent / f".campaign-{campaign_id}.lock"
    try:
        handle = os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "a")
    except OSError as error:
        raise InputError(f"cannot lock {path}: {error.strerror}") from None
    with handle:
        try:
            fcntl.flock(handle, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CampaignLocked(campaign_id) from None
        yield
