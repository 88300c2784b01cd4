"""A campaign's workers as the store keeps them: listed with their counts, followed, settled."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mailer.db.database import IN_JSON, Connection, Database, as_json
from mailer.send.campaigns import change_settings, raised_bound
from mailer.send.deliveries import QUEUED, conclude, queued_in
from mailer.times import stamp


@dataclass(frozen=True, slots=True)
class Worker:
    """One process's part in a campaign, as `campaigns show` lists it."""

    name: str
    started_at: str
    seen_at: str
    finished_at: str
    counts: dict[str, int]


def workers(database: Database, campaign_id: int) -> list[Worker]:
    """The processes that worked on a campaign, with what each sent, failed, deferred."""
    counts: dict[str, dict[str, int]] = {}
    for name, status, count in database.query(
        "SELECT claimed_by, status, COUNT(*) FROM deliveries WHERE campaign_id = ?"
        " AND claimed_by != '' GROUP BY claimed_by, status",
        (campaign_id,),
    ):
        counts.setdefault(name, {})[status] = int(count)
    rows = database.query(
        "SELECT worker, started_at, seen_at, finished_at FROM campaign_workers"
        " WHERE campaign_id = ? ORDER BY started_at, worker",
        (campaign_id,),
    )
    return [Worker(r[0], r[1], r[2], r[3], counts.get(r[0], {})) for r in rows]


def queued(database: Database, campaign_id: int) -> int:
    """How many of a campaign's deliveries are still queued (read through the partial index
    of queued deliveries, which shrinks as they are sent)."""
    row = database.query_one(QUEUED, (campaign_id,))
    return int(row[0]) if row else 0


def ended_otherwise(database: Database, campaign_id: int) -> dict[str, int]:
    """How many of a campaign's deliveries are failed, deferred or skipped: usually few, but
    counted over the campaign's rows, so a follower asks now and then, not every tick."""
    rows = database.query(
        "SELECT status, COUNT(*) FROM deliveries WHERE campaign_id = ?"
        " AND status IN ('failed', 'deferred', 'skipped') GROUP BY status",
        (campaign_id,),
    )
    return {"failed": 0, "deferred": 0, "skipped": 0} | {str(s): int(n) for s, n in rows}


def settle(database: Database, campaign_id: int, host: str, pids: Sequence[int]) -> str:
    """Once a machine's workers have all ended: those of them that died are marked finished,
    and a campaign that no worker sends any more is done, or paused with what is left. The
    campaign's status is returned."""
    at = stamp(datetime.now(UTC))
    with database.transaction() as db:
        db.execute(
            f"UPDATE campaign_workers SET finished_at = ? WHERE campaign_id = ? AND host = ?"
            f" AND pid IN {IN_JSON} AND finished_at = ''",
            (at, campaign_id, host, as_json(pids)),
        )
        status = db.execute("SELECT status FROM campaigns WHERE id = ?", (campaign_id,)).fetchone()
        others = db.execute(
            "SELECT COUNT(*) FROM campaign_workers WHERE campaign_id = ? AND finished_at = ''",
            (campaign_id,),
        ).fetchone()[0]
        # A draft: stopped before any of its workers began it.
        if status is None or status[0] not in ("sending", "draft") or others:
            return str(status[0]) if status else ""
        queued = queued_in(db, campaign_id)
        return conclude(db, campaign_id, f"{queued} not sent yet (its workers ended)", at, queued)


def join_bound(db: Connection, campaign_id: int, worker: str, bound: int) -> None:
    """A worker joins with its own bound (its connections and its batch): the campaign's
    recorded bound grows to the sum of those of the workers sending now, for all of them may
    die at once. In the caller's transaction, which holds the campaign's row."""
    alive = [name for (name,) in db.execute(
        "SELECT worker FROM campaign_workers WHERE campaign_id = ? AND finished_at = ''",
        (campaign_id,),
    )]  # fmt: skip

    def joined(settings: dict[str, Any]) -> None:
        bounds = {**settings.get("worker_bounds", {}), worker: bound}
        settings["worker_bounds"] = {name: bounds[name] for name in alive if name in bounds}
        raised_bound(settings, sum(bounds.get(name, bound) for name in alive))

    change_settings(db, campaign_id, joined)
