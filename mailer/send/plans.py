"""A campaign planned before it is sent: editions compiled, every message rendered once, checks."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from mailer.compose.editions import Edition, read_editions
from mailer.compose.report import Report
from mailer.config.default_file import unfit_for_readers
from mailer.errors import InputError, UnfitForReaders
from mailer.send.builders import message_builder, send_options
from mailer.send.campaign_editions import StoredEdition, to_store
from mailer.send.campaigns import CampaignInfo, Campaigns
from mailer.send.messages import MessageFactory, Recipe
from mailer.send.recipients import Audience, eligible
from mailer.send.sessions import NO_OVERRIDES, Overrides, Session
from mailer.send.smtp import SmtpTransport
from mailer.send.transports import choose_transport
from mailer.send.types import SendOptions, Transport
from mailer.times import localised


@dataclass(frozen=True)
class Plan:
    """A campaign about to be sent, as the editor is asked to approve it; compiled already,
    so a template error stops it before anything else happens."""

    report: Report
    source: str
    audience: Audience
    readers: int
    transport: Transport
    options: SendOptions
    recipe: Recipe
    factory: MessageFactory
    editions: tuple[StoredEdition, ...] = ()  # every language, the default first
    edition_of: tuple[str, Sequence[str]] = ("''", ())  # SQL: a reader's edition from s.lang
    again: bool = False  # sent even where this report went before (--again)

    def check(self) -> None:
        """Raise when the campaign would reach nobody."""
        if self.readers == 0:
            raise InputError(f"{self.audience.describe()}: no confirmed, active readers")


def run_options(session: Session, overrides: Overrides) -> SendOptions:
    return send_options(session.settings, overrides.concurrency, overrides.rate, overrides.limit)


def ready_for_readers(session: Session, transport: Transport) -> None:
    """Refuse, before connecting, an SMTP send while [newsletter] base_url is plain http on a
    public host; the outbox takes anything."""
    problems = unfit_for_readers(session.settings) if isinstance(transport, SmtpTransport) else ""
    if problems:
        raise UnfitForReaders(f"refusing to send over SMTP: {problems}")


def resume_options(session: Session, info: CampaignInfo, overrides: Overrides) -> SendOptions:
    """A resumed or retried run's options: the campaign's stored rate and concurrency, unless
    the run gives new ones."""
    stored = info.settings
    concurrency = overrides.concurrency or stored.get("concurrency")
    rate = stored.get("rate") if overrides.rate is None else overrides.rate
    return send_options(session.settings, concurrency, rate, overrides.limit)


def same_report(campaigns: Campaigns, chosen: Audience, source: str) -> CampaignInfo | None:
    """The latest campaign of this very report source to one of these lists that sent it to
    someone, or still may (Campaigns.latest_issue)."""
    earlier = campaigns.latest_issue(source, [found.slug for found in chosen.lists])
    info = None if earlier is None else campaigns.get(earlier)
    return info if info is not None and info.source == source else None


def already(earlier: CampaignInfo, zone: str = "") -> str:
    """What an earlier campaign of the same report did, with its campaign number and date."""
    lists = " + ".join(earlier.lists)
    if earlier.status == "scheduled":
        when = localised(datetime.fromisoformat(earlier.scheduled_at or earlier.created_at), zone)
        return (f"already scheduled for {lists} as campaign {earlier.id},"
                f" for {when:%Y-%m-%d %H:%M} {when.tzname()}")  # fmt: skip
    if earlier.counts["sent"]:
        return f"already sent to {lists} as campaign {earlier.id} on {earlier.created_at[:10]}"
    return (f"already being sent to {lists} as campaign {earlier.id} ({earlier.status}),"
            f" started {earlier.created_at[:10]}")  # fmt: skip


def recipe_for(
    session: Session,
    editions: Sequence[Edition],
    chosen: Audience,
    key: str,
    files: Mapping[str, bytes] | None = None,
) -> Recipe:
    return Recipe.of(session.settings, editions, chosen.shown, key, chosen.several, files)


def plan_campaign(
    session: Session,
    report: Report,
    chosen: Audience,
    overrides: Overrides = NO_OVERRIDES,
    published: str = "",
) -> Plan:
    """Compile the report and its editions for a list and render each reader's edition, as a
    dry run does: a template error in any edition, a reader it fails for (a missing attribute)
    or a bad setting stops it here. ``published`` (an ISO date) dates its archived copy: the
    day it goes out, today unless it is scheduled."""
    editions = read_editions(report)
    source = editions[0].source
    transport = choose_transport(session.settings, overrides.outbox)
    ready_for_readers(session, transport)
    options = run_options(session, overrides)
    earlier = same_report(Campaigns(session.database), chosen, source)
    if earlier is not None and not overrides.again:
        done = already(earlier, session.settings.newsletter.timezone)
        raise InputError(f"{report.path}: {done}; --again sends it anyway")
    recipe = recipe_for(session, editions, chosen, f"c{os.urandom(3).hex()}")
    factory = MessageFactory(recipe)
    with contextlib.closing(eligible(session.database, chosen)) as everyone:
        readers = factory.editions.check(everyone)  # ends its query even when one fails
    base_url = session.settings.newsletter.base_url
    stored = to_store(editions, factory.editions, base_url, published)  # dated as it goes out
    return Plan(report, source, chosen, readers, transport, options, recipe, factory,
                tuple(stored), factory.editions.chooser.sql(), overrides.again)  # fmt: skip


def check_campaign(session: Session, report: Report, chosen: Audience) -> int:
    """A dry run: build every reader's message, send nothing; raise on the first that fails."""
    run_options(session, Overrides())  # the return path is checked as a send would
    factory = MessageFactory(recipe_for(session, read_editions(report), chosen, "dry-run"))
    build = message_builder(factory, 0)
    count = 0
    with contextlib.closing(eligible(session.database, chosen)) as everyone:
        for reader in everyone:
            build(reader)
            count += 1
    return count
