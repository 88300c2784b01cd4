"""What a sending service call runs with (Session), one run's Overrides, and its RunResult."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mailer import config
from mailer.db.database import Database
from mailer.send.types import Control, Progress, Stop


@dataclass(frozen=True)
class Overrides:
    """What the editor sets for one run, over [smtp] settings."""

    concurrency: int | None = None
    rate: float | None = None
    limit: int = 0  # deliver at most this many now; the rest waits for a resume
    outbox: Path | None = None  # deliver into this Maildir instead
    again: bool = False  # send a report its list already had


NO_OVERRIDES = Overrides()


@dataclass
class Session:
    """What every service call runs with: settings, the database, how progress is reported
    and how the caller stops a run."""

    settings: config.Settings
    database: Database
    on_progress: Callable[[Progress], None] = lambda _: None
    control: Control = field(default_factory=Control)


@dataclass(frozen=True)
class RunResult:
    """How a run ended: the campaign (None for a test or a run stopped before the server
    answered), the counts, how many are left queued for a later resume, and the campaign's
    status and deferred deliveries then (with workers, the others' too)."""

    campaign_id: int | None
    progress: Progress
    queued: int = 0
    status: str = ""
    deferred: int = 0

    @classmethod
    def of(
        cls, campaign_id: int, progress: Progress, counts: dict[str, int], status: str
    ) -> RunResult:
        return cls(campaign_id, progress, counts["queued"], status, counts["deferred"])

    @property
    def stop(self) -> Stop | None:
        return self.progress.stop

    @property
    def exit_code(self) -> int:
        return 0 if self.stop is None else self.stop.reason.exit_code
