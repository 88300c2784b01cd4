"""The campaigns' calendar: which are due, which fell due too long ago (late) or were stopped
with the service, and the editor's cancel and reschedule; each a change of one campaign row."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from mailer.db.database import Database
from mailer.errors import InputError
from mailer.send.campaigns import Campaigns
from mailer.send.lock import one_sender
from mailer.times import stamp

LATE = "late"  # the start of the reason of a scheduled campaign that waits for the editor
STOPPED = "service stopped"  # ... of a campaign paused when `mailer serve` stopped


@dataclass(frozen=True, slots=True)
class Due:
    id: int
    at: str  # UTC ISO 8601


def due(database: Database, now: datetime) -> list[Due]:
    """Scheduled campaigns whose time has come, oldest first, less those marked late."""
    rows = database.query(
        "SELECT id, scheduled_at FROM campaigns WHERE status = 'scheduled'"
        " AND scheduled_at <= ? AND reason NOT LIKE ? ORDER BY scheduled_at, id",
        (stamp(now), f"{LATE}%"),
    )
    return [Due(row[0], row[1]) for row in rows]


def next_time(database: Database) -> str | None:
    """When the next scheduled campaign is due (UTC ISO 8601), if one is."""
    row = database.query_one(
        "SELECT MIN(scheduled_at) FROM campaigns WHERE status = 'scheduled' AND reason NOT LIKE ?",
        (f"{LATE}%",),
    )
    return row[0] if row else None


def unfinished(database: Database) -> list[int]:
    """Campaigns the scheduler started and did not finish: still `sending` (its process died)
    or paused when the service stopped. Welcome campaigns are the scheduler's too."""
    rows = database.query(
        "SELECT id FROM campaigns WHERE (scheduled_at IS NOT NULL OR kind = 'welcome')"
        " AND (status = 'sending' OR (status = 'paused' AND reason LIKE ?)) ORDER BY id",
        (f"{STOPPED}%",),
    )
    return [row[0] for row in rows]


def mark_late(database: Database, campaign_id: int, at: str, late_after: str) -> None:
    """The campaign fell due more than ``late_after`` ago: it waits for the editor."""
    reason = (f"{LATE}: due at {at}, more than {late_after} ago; start it with"
              f" `mailer campaigns resume {campaign_id}` or move it with `reschedule`")  # fmt: skip
    _set(database, campaign_id, "scheduled", reason, "status = 'scheduled'")


def mark_stopped(database: Database, campaign_id: int) -> None:
    """Paused because the service stopped: it goes on when the service starts again."""
    reason = f"{STOPPED}; it goes on when `mailer serve` starts again"
    _set(database, campaign_id, "paused", reason, "status = 'paused'")


def cancel(database: Database, campaign_id: int) -> None:
    """Cancel a scheduled or paused campaign; a running, finished or cancelled one is an error
    that says why."""
    info = Campaigns(database).get(campaign_id)
    if info.status in ("done", "cancelled"):
        raise InputError(f"campaign {campaign_id} is {info.status}: there is nothing to cancel")
    if info.kind == "welcome":
        raise InputError(f"campaign {campaign_id} is a list's welcome: use"
                         " `mailer lists set LIST --no-welcome`")  # fmt: skip
    with one_sender(database.path, campaign_id):  # a process sending it: InputError
        _set(database, campaign_id, "cancelled", "cancelled by the editor",
             "status IN ('draft', 'scheduled', 'sending', 'paused')")  # fmt: skip


def reschedule(database: Database, campaign_id: int, at: datetime) -> None:
    """Move a scheduled campaign (late or not) to ``at``."""
    info = Campaigns(database).get(campaign_id)
    if info.status != "scheduled":
        raise InputError(f"campaign {campaign_id} is {info.status}, not scheduled: only a"
                         " campaign that has not started can be moved")  # fmt: skip
    with database.transaction() as db:
        db.execute(
            "UPDATE campaigns SET scheduled_at = ?, reason = '' WHERE id = ?"
            " AND status = 'scheduled'",
            (stamp(at), campaign_id),
        )


def _set(database: Database, campaign_id: int, status: str, reason: str, only: str) -> None:
    with database.transaction() as db:
        changed = db.execute(
            f"UPDATE campaigns SET status = ?, reason = ? WHERE id = ? AND {only}",
            (status, reason, campaign_id),
        ).rowcount
    if not changed:
        raise InputError(f"campaign {campaign_id} changed meanwhile; see `mailer campaigns show`")
