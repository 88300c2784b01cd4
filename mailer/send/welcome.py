"""A list's welcome mail: set from a report, queued for each reader who joins, delivered."""

# The welcome is a campaign of kind 'welcome' (lists.welcome_campaign_id names the list's
# current one) with no deliveries when it is stored: one is queued, INSERT OR IGNORE, for each
# reader who joins, in the very transaction of the join (``joining``), and the sending service
# delivers them (``deliver_welcome`` for each campaign ``waiting`` names, on each tick of
# `mailer serve`'s scheduler; ``deliver_welcomes`` does all at once), so each
# message is recorded, signed and carries the one-click unsubscribe as an issue does.

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from mailer.audience import lists
from mailer.compose.editions import Chooser
from mailer.compose.report import Report
from mailer.db.database import Connection, Database
from mailer.errors import CampaignLocked, MailerError
from mailer.models import Reader
from mailer.send.campaigns import CampaignInfo, Campaigns
from mailer.send.plans import Plan, plan_campaign
from mailer.send.recipients import audience
from mailer.send.service import continue_campaign, store_plan
from mailer.send.sessions import Overrides, RunResult, Session

QUEUED = ("queued",)  # deferred ones wait for `campaigns retry`, as an issue's do
# A reader as the form brings them, as an error names them: "(for a reader who joins: ...)".
NEWCOMER = "a reader who joins: no name, no attributes"


@dataclass(frozen=True, slots=True)
class Replaced:
    """What setting or clearing a list's welcome did: the campaign it has now (None: none) and
    the one it had before (None: none)."""

    now: CampaignInfo | None
    before: int | None


def welcome_of(database: Database, slug: str) -> CampaignInfo | None:
    """The list's welcome campaign, or None."""
    found = lists.get(database, slug)
    row = database.query_one("SELECT welcome_campaign_id FROM lists WHERE id = ?", (found.id,))
    return None if row is None or row[0] is None else Campaigns(database).get(int(row[0]))


def welcomes(database: Database) -> dict[int, str]:
    """Each list's welcome campaign: {campaign id: list slug}."""
    rows = database.query(
        "SELECT welcome_campaign_id, slug FROM lists WHERE welcome_campaign_id IS NOT NULL"
    )
    return {int(row[0]): str(row[1]) for row in rows}


def set_welcome(session: Session, slug: str, report: Report) -> Replaced:
    """Check the report as a send does (every edition compiled, rendered for each reader of the
    list, and for a newcomer with no name and no attributes), then store it as the list's
    welcome: a campaign of kind 'welcome' with its editions and files, kept out of the public
    archive. The one it replaces stays in history and gets no new readers."""
    database = session.database
    chosen = audience(database, [slug])
    plan = plan_campaign(session, report, chosen, Overrides(again=True))
    _check_newcomer(plan)
    campaigns = Campaigns(database)
    files = plan.factory.files.snapshot()
    campaign_id = store_plan(campaigns, plan, files, kind="welcome")
    before = _point(database, chosen.lists[0].id, campaign_id)
    return Replaced(campaigns.get(campaign_id), before)


def clear_welcome(database: Database, slug: str) -> Replaced:
    """The list has no welcome any more; the campaign it had stays in history."""
    return Replaced(None, _point(database, lists.get(database, slug).id, None))


def _point(database: Database, list_id: int, campaign_id: int | None) -> int | None:
    with database.transaction() as db:
        row = db.execute("SELECT welcome_campaign_id FROM lists WHERE id = ?", (list_id,))
        before = row.fetchone()[0]
        db.execute("UPDATE lists SET welcome_campaign_id = ? WHERE id = ?", (campaign_id, list_id))
    return None if before is None else int(before)


def _check_newcomer(plan: Plan) -> None:
    """Render every edition for a reader as the subscribe form brings them (no name, no
    attributes): the readers of the list today are not those the welcome will go to."""
    plan.factory.editions.check(
        [Reader(0, NEWCOMER, "", {}, False, edition.lang) for edition in plan.editions]
    )


def queue_welcome(db: Connection, list_id: int, subscriber_id: int) -> int | None:
    """In the caller's transaction: queue the list's welcome for the reader, once (a reader who
    has it queued or sent already gets none), and only for a confirmed, active member; their
    edition is chosen now, from their language, as an issue's snapshot chooses. Return the
    welcome campaign when a delivery was queued."""
    row = db.execute("SELECT welcome_campaign_id FROM lists WHERE id = ?", (list_id,)).fetchone()
    if row is None or row[0] is None:
        return None
    campaign_id = int(row[0])
    tags = [lang for (lang,) in db.execute(
        "SELECT lang FROM campaign_editions WHERE campaign_id = ? ORDER BY position",
        (campaign_id,))]  # fmt: skip
    edition, values = Chooser(tags).sql() if tags else ("''", [])
    cursor = db.execute(
        f"INSERT OR IGNORE INTO deliveries (campaign_id, subscriber_id, edition) SELECT ?, s.id,"
        f" {edition} FROM memberships m JOIN subscribers s ON s.id = m.subscriber_id"
        " WHERE m.list_id = ? AND m.subscriber_id = ? AND m.status = 'confirmed'"
        " AND s.status = 'active'",
        [campaign_id, *values, list_id, subscriber_id],
    )
    return campaign_id if cursor.rowcount else None


class Joining:
    """Watches every transaction of a database (as ``joining`` installs it) and, before it
    commits, queues the welcome of each list the reader joined in it: became a confirmed,
    active member of (only ``list_id``, when given). The join and its welcome are one commit:
    a crash cannot keep one without the other, and a join that is rolled back queues nothing.
    ``reader`` is a subscriber id, or an address (a reader the transaction may create).
    ``queued`` lists the welcome campaigns queued."""

    def __init__(self, reader: int | str, list_id: int | None = None) -> None:
        self.reader, self.list_id = reader, list_id
        self.queued: list[int] = []
        self.before: set[tuple[int, int]] = set()

    def begin(self, db: Connection) -> None:
        self.before = self.members(db)

    def before_commit(self, db: Connection) -> None:
        joined = sorted(self.members(db) - self.before)
        queued = [queue_welcome(db, list_id, reader) for list_id, reader in joined]
        self.queued.extend(found for found in queued if found is not None)

    def members(self, db: Connection) -> set[tuple[int, int]]:
        """(list, subscriber) where the reader is a confirmed, active member of a list that
        has a welcome (only ``list_id``, when given)."""
        who = "s.id = ?" if isinstance(self.reader, int) else "s.email = ?"
        only, params = ("", [self.reader]) if self.list_id is None else (
            " AND m.list_id = ?", [self.reader, self.list_id])  # fmt: skip
        rows = db.execute(
            "SELECT m.list_id, s.id FROM subscribers s JOIN memberships m"
            " ON m.subscriber_id = s.id JOIN lists l ON l.id = m.list_id"
            f" WHERE {who}{only} AND m.status = 'confirmed' AND s.status = 'active'"
            " AND l.welcome_campaign_id IS NOT NULL",
            params,
        )
        return {(int(row[0]), int(row[1])) for row in rows}


@contextmanager
def joining(database: Database, reader: int | str, list_id: int | None = None) -> Iterator[Joining]:
    """While it is open, every transaction of ``database`` queues the welcomes of what
    ``reader`` joined in it (see Joining)."""
    watcher = Joining(reader, list_id)
    database.watchers.append(watcher)
    try:
        yield watcher
    finally:
        database.watchers.remove(watcher)


def waiting(database: Database) -> list[int]:
    """Welcome campaigns (the lists' own, and those replaced since) with deliveries queued,
    not cancelled, whose lists still exist."""
    rows = database.query(
        "SELECT c.id FROM campaigns c WHERE c.kind = 'welcome' AND c.status != 'cancelled'"
        " AND EXISTS (SELECT 1 FROM deliveries d WHERE d.campaign_id = c.id"
        "  AND d.status = 'queued')"
        " AND EXISTS (SELECT 1 FROM campaign_lists cl JOIN lists l ON l.id = cl.list_id"
        "  WHERE cl.campaign_id = c.id) ORDER BY c.id"
    )
    return [int(row[0]) for row in rows]


async def deliver_welcome(session: Session, campaign_id: int) -> RunResult | None:
    """Deliver the queued deliveries of one welcome campaign; None when another process is
    sending it (they stay queued, for it or the next tick)."""
    try:
        return await continue_campaign(session, campaign_id, QUEUED)
    except CampaignLocked:
        return None


async def deliver_welcomes(session: Session) -> list[RunResult]:
    """Deliver every welcome waiting (one run per campaign, skipping one another process is
    sending), until the session is stopped. A campaign that cannot be sent (a reader its
    report fails for) does not hold up the others: the first such error is raised after
    they had their turn."""
    results: list[RunResult] = []
    problems: list[MailerError] = []
    for campaign_id in waiting(session.database):
        if session.control.requested is not None:
            break
        try:
            result = await deliver_welcome(session, campaign_id)
        except MailerError as error:
            problems.append(error)
            continue
        if result is not None:
            results.append(result)
    if problems:
        raise problems[0]
    return results
