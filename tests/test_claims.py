"""A worker's claims, on each engine, with a clock the test moves: they go on past the last
reader claimed, and what came free behind is taken within a quarter lease."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mailer.audience import lists, subscriptions
from mailer.db.database import Database
from mailer.models import Candidate
from mailer.send.campaign_workers import settle, workers
from mailer.send.campaigns import Campaigns
from mailer.send.claims import ClaimLog
from mailer.send.deliveries import PENDING, CampaignLog
from mailer.send.recipients import Audience
from mailer.send.types import Delivery, Result
from tests.conftest import store

pytestmark = pytest.mark.usefixtures("engine")  # each test on SQLite, then PostgreSQL

LEASE = 60.0


@dataclass
class Clock:
    now: datetime = field(default_factory=lambda: datetime(2026, 11, 28, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def database(workspace: Path) -> Iterator[Database]:
    with store(workspace) as db:
        yield db


def campaign(database: Database, readers: int) -> tuple[int, list[int]]:
    """A campaign to ``readers`` confirmed readers, and their ids in order."""
    home = lists.create(database, "home", "Home")
    candidates = [Candidate(f"r{i}@example.org", False) for i in range(readers)]
    subscriptions.add(database, home, candidates, confirmed=True)
    campaign_id = Campaigns(database).create(Audience((home,)), "s", "r.md", "# s", {})
    ids = [int(row[0]) for row in database.query("SELECT id FROM subscribers ORDER BY id")]
    return campaign_id, ids


def started(database: Database, campaign_id: int, clock: Clock) -> tuple[ClaimLog, ClaimLog]:
    """Two workers on the campaign, a (host:1-x) and b (host:2-x), on ``clock``."""
    a, b = (ClaimLog(database, campaign_id, f"host:{n}-x", 0.0, LEASE, clock) for n in (1, 2))
    a.start()
    b.start()
    return a, b


def ids(page: list[Delivery]) -> list[int]:
    return [delivery.reader.id for delivery in page]


def sent(log: ClaimLog, readers: list[int]) -> None:
    log.record([Result(reader, "sent", 1, 250, "ok") for reader in readers])


def test_claims_go_on_past_the_last_and_take_what_came_free_behind_soon(
    database: Database,
) -> None:
    campaign_id, readers = campaign(database, 40)
    clock = Clock()
    a, b = started(database, campaign_id, clock)
    assert ids(a.pending(0, 5)) == readers[0:5]
    dead = ids(b.pending(0, 5))  # b dies holding its batch
    assert dead == readers[5:10]
    assert ids(a.pending(0, 5)) == readers[10:15]  # past b's batch, which b holds
    sent(a, readers[0:5] + readers[10:15])
    with database.transaction() as db:  # b's batch came free (given back, or its lease ran out)
        db.execute("UPDATE deliveries SET lease_until = '' WHERE claimed_by = 'host:2-x'")
    assert ids(a.pending(0, 5)) == readers[15:20]  # on past its last, not back over the sent
    sent(a, readers[15:20])
    clock.advance(LEASE / 4 - 1)
    assert ids(a.pending(0, 5)) == readers[20:25]  # not yet behind
    sent(a, readers[20:25])
    clock.advance(1)  # every quarter lease, a claim looks from the first reader again
    assert ids(a.pending(0, 5)) == dead
    sent(a, dead)
    assert ids(a.pending(0, 5)) == readers[25:30]


def test_a_claim_that_finds_none_ahead_looks_behind_at_once(database: Database) -> None:
    campaign_id, readers = campaign(database, 12)
    a, b = started(database, campaign_id, Clock())
    assert ids(b.pending(0, 5)) == readers[0:5]
    assert ids(a.pending(0, 10)) == readers[5:12]
    sent(a, readers[5:12])
    b.finish(None)  # b stops: it gives back what it did not send
    assert ids(a.pending(0, 10)) == readers[0:5]  # nothing is left ahead: from the first
    sent(a, readers[0:5])
    assert a.pending(0, 10) == []


def test_a_plain_run_credits_what_it_sends_to_no_worker(database: Database) -> None:
    campaign_id, readers = campaign(database, 4)
    a, _ = started(database, campaign_id, Clock())
    assert ids(a.pending(0, 4)) == readers  # a claims all four, then dies
    sent(a, readers[:1])
    CampaignLog(database, campaign_id, PENDING).record(
        [Result(reader, "sent", 1, 250, "ok") for reader in readers[1:]]
    )  # the resume that sent the rest
    credited = database.query(
        "SELECT claimed_by, COUNT(*) FROM deliveries WHERE status = 'sent' GROUP BY claimed_by"
        " ORDER BY claimed_by"
    )
    assert credited == [("", 3), ("host:1-x", 1)]
    assert [(w.name, w.counts) for w in workers(database, campaign_id)] == [
        ("host:1-x", {"sent": 1}),
        ("host:2-x", {}),
    ]


def test_a_campaign_its_workers_never_began_is_paused_once_they_end(database: Database) -> None:
    campaign_id, _ = campaign(database, 3)  # stored for workers stopped before they began
    assert settle(database, campaign_id, "host", [1, 2]) == "paused"
    assert Campaigns(database).get(campaign_id).reason == "3 not sent yet (its workers ended)"


def test_a_worker_just_started_shares_the_rate_until_it_finds_nothing(database: Database) -> None:
    campaign_id, readers = campaign(database, 4)
    clock = Clock()
    a, b = (ClaimLog(database, campaign_id, f"host:{n}-x", 100.0, LEASE, clock) for n in (1, 2))
    a.start()
    assert ids(a.pending(0, 4)) == readers  # a holds them all
    b.start()
    clock.advance(0.5)
    assert a.rate() == 50.0  # b is about to claim: before, a went on at the whole rate
    assert b.pending(0, 4) == []  # nothing left for it
    clock.advance(0.5)
    assert a.rate() == 100.0  # b waits, sending nothing: the rate is a's again


@pytest.mark.parametrize("order", [(48, 9), (9, 48)])
def test_the_recorded_bound_is_the_sum_of_each_workers_own(
    database: Database, order: tuple[int, int]
) -> None:
    """Workers with different connections (16 on one host, 1 on another): whichever joins
    first, the campaign records what all of them may have in flight together; one that ended
    no longer counts for those who join after."""
    campaign_id, _ = campaign(database, 3)
    clock = Clock()
    first, second = (ClaimLog(database, campaign_id, f"host:{n}-x", 0.0, LEASE, clock,
                              in_flight=bound) for n, bound in enumerate(order))  # fmt: skip
    first.start()
    second.start()
    assert Campaigns(database).get(campaign_id).settings["in_flight_limit"] == 57
    second.finish(None)
    ClaimLog(database, campaign_id, "host:9-x", 0.0, LEASE, clock, in_flight=9).start()
    assert Campaigns(database).get(campaign_id).settings["in_flight_limit"] == 57  # never less
