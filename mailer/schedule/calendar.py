"""The campaigns' calendar: which are due, late or stopped with the service; cancel, reschedule."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from mailer.db.database import Database
from mailer.errors import CampaignLocked, InputError
from mailer.send.campaigns import CampaignInfo, Campaigns
from mailer.send.types import StopReason
from mailer.times import stamp

LATE = "late"  # the start of the reason of a scheduled campaign that waits for the editor
STOPPED = StopReason.SHUTDOWN.value  # ... of a campaign paused when `mailer serve` stopped
UNREACHABLE = StopReason.UNREACHABLE.value  # ... when its relay stopped answering mid-send
FAILED = "could not start"  # ... of one the scheduler tried and had to leave to the editor


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
    """Campaigns the scheduler started and did not finish: still `sending` (its process died),
    paused when the service stopped or when their relay stopped answering, whose lists still
    exist. Welcome campaigns are the
    scheduler's too."""
    rows = database.query(
        "SELECT c.id FROM campaigns c WHERE (c.scheduled_at IS NOT NULL OR c.kind = 'welcome')"
        " AND (c.status = 'sending' OR (c.status = 'paused' AND (c.reason LIKE ?"
        " OR c.reason LIKE ?)))"
        " AND EXISTS (SELECT 1 FROM campaign_lists cl JOIN lists l ON l.id = cl.list_id"
        "  WHERE cl.campaign_id = c.id) ORDER BY c.id",
        (f"{STOPPED}%", f"{UNREACHABLE}%"),
    )
    return [row[0] for row in rows]


def still_due(info: CampaignInfo, now: datetime) -> bool:
    """Whether the scheduler may still start or go on with ``info`` once it holds its lock:
    the editor may have moved, cancelled or paused it since the scheduler looked."""
    if info.status == "scheduled":
        return info.scheduled_at is not None and info.scheduled_at <= stamp(now)
    stopped = info.status == "paused" and info.reason.startswith((STOPPED, UNREACHABLE))
    return info.status == "sending" or stopped


def mark_late(database: Database, campaign_id: int, at: str, late_after: str) -> None:
    """The campaign fell due more than ``late_after`` ago: it waits for the editor."""
    reason = (f"{LATE}: due at {at}, more than {late_after} ago; start it with"
              f" `mailer campaigns resume {campaign_id}` or move it with `reschedule`")  # fmt: skip
    _set(database, campaign_id, "scheduled", reason, "status = 'scheduled'")


def mark_failed(database: Database, campaign_id: int, problem: str) -> None:
    """The scheduler could not start or go on with it (its lists are gone, a reader its report
    fails for): paused with the reason, for the editor, and not tried again every second."""
    reason = f"{FAILED}: {problem}; mend it, then `mailer campaigns resume {campaign_id}`"
    try:
        with database.campaign_lock(campaign_id), database.transaction() as db:
            db.execute(
                "UPDATE campaigns SET status = 'paused', reason = ? WHERE id = ?"
                " AND status IN ('scheduled', 'sending', 'paused')",
                (reason, campaign_id),
            )
    except CampaignLocked:  # another process took it up meanwhile: its own run says how it goes
        return


def cancel(database: Database, campaign_id: int) -> None:
    """Cancel a scheduled or paused campaign; a running, finished or cancelled one is an error
    that says why."""
    info = Campaigns(database).get(campaign_id)
    if info.status in ("done", "cancelled"):
        raise InputError(f"campaign {campaign_id} is {info.status}: there is nothing to cancel")
    if info.kind == "welcome":
        raise InputError(f"campaign {campaign_id} is a list's welcome: use"
                         " `mailer lists set LIST --no-welcome`")  # fmt: skip
    with database.campaign_lock(campaign_id):  # a process sending it: InputError
        _set(database, campaign_id, "cancelled", "cancelled by the editor",
             "status IN ('draft', 'scheduled', 'sending', 'paused')")  # fmt: skip


def reschedule(database: Database, campaign_id: int, at: datetime) -> None:
    """Move a scheduled campaign (late or not) to ``at``; not while a process is starting it."""
    info = Campaigns(database).get(campaign_id)
    if info.status != "scheduled":
        raise InputError(f"campaign {campaign_id} is {info.status}, not scheduled: only a"
                         " campaign that has not started can be moved")  # fmt: skip
    # The scheduler starting it holds its lock: CampaignLocked says so.
    with database.campaign_lock(campaign_id), database.transaction() as db:
        moved = db.execute(
            "UPDATE campaigns SET scheduled_at = ?, reason = '' WHERE id = ?"
            " AND status = 'scheduled'",
            (stamp(at), campaign_id),
        ).rowcount
    if not moved:
        raise InputError(f"campaign {campaign_id} started meanwhile; see `mailer campaigns show`")


def _set(database: Database, campaign_id: int, status: str, reason: str, only: str) -> None:
    with database.transaction() as db:
        changed = db.execute(
            f"UPDATE campaigns SET status = ?, reason = ? WHERE id = ? AND {only}",
            (status, reason, campaign_id),
        ).rowcount
    if not changed:
        raise InputError(f"campaign {campaign_id} changed meanwhile; see `mailer campaigns show`")
