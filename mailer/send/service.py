"""The sending service the CLI and the scheduler call: plan, check, send, test, continue."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from mailer.audience import lists
from mailer.audience.addresses import Address
from mailer.audience.suppression import suppressed_among
from mailer.compose.editions import read_editions, stored_editions
from mailer.compose.report import Report
from mailer.errors import InputError, NotFoundError, StoreError
from mailer.models import PLACEHOLDER_READER
from mailer.send import campaign_editions
from mailer.send.build_processes import BuildPool
from mailer.send.builders import (
    build_pool,
    campaign_builder,
    with_verp,
)
from mailer.send.campaigns import CampaignInfo, Campaigns
from mailer.send.claims import ClaimLog
from mailer.send.connecting import open_first
from mailer.send.deliveries import PENDING, CampaignLog, MemoryLog, find_reader
from mailer.send.engine import Pipeline
from mailer.send.messages import MessageFactory
from mailer.send.plans import (
    Plan,
    check_campaign,
    plan_campaign,
    ready_for_readers,
    recipe_for,
    resume_options,
    run_options,
)
from mailer.send.recipients import Audience, audience, snapshot_readers
from mailer.send.same_setup import check_same_setup, setup_of
from mailer.send.sessions import NO_OVERRIDES, Overrides, RunResult, Session
from mailer.send.transports import choose_transport
from mailer.send.types import (
    Connection,
    DeliveryLog,
    Progress,
    SendOptions,
    Stop,
    StopReason,
    Transport,
)
from mailer.times import stamp
from mailer.tokens import load_secret

# The campaign row exists and its lock is held before the first message is built.
__all__ = [
    "RESUME", "RETRY", "Overrides", "Plan", "RunResult", "Session", "check_campaign",
    "continue_campaign", "plan_campaign", "resume_options", "schedule_campaign", "send_campaign",
    "send_test",
]  # fmt: skip

RESUME = PENDING
RETRY = ("deferred",)


async def send_campaign(session: Session, plan: Plan) -> RunResult:
    """Start the build processes, check the server answers, store the campaign with its
    recipients, lock it, send. Until the server answers, a stop leaves nothing behind."""
    settings, database = session.settings, session.database
    ready_for_readers(session, plan.transport)
    files = plan.factory.files.snapshot()  # what the check read: stored, and what workers use
    pool = build_pool(settings, replace(plan.recipe, files=files))
    async with pool or contextlib.nullcontext():
        first = await open_first(plan.transport, session.control)
        if first is None:
            return RunResult(None, Progress(plan.readers, stop=Stop(StopReason.USER)))
        try:
            campaigns = Campaigns(database)
            campaign_id = store_plan(campaigns, plan, files)
        except BaseException:
            await first.close()
            raise
        with database.campaign_lock(campaign_id):
            log = CampaignLog(database, campaign_id, RESUME)
            progress = await _run(session, plan.transport, log, plan.factory, pool, campaign_id,
                                  plan.options, plan.readers, first)  # fmt: skip
    info = campaigns.get(campaign_id)
    return RunResult.of(campaign_id, progress, info.counts, info.status)


def schedule_campaign(session: Session, plan: Plan, at: datetime) -> int:
    """Store the campaign, checked already, to start at ``at``: its report, editions, files and
    settings now, its readers when it starts (`mailer serve`'s scheduler, or a resume)."""
    ready_for_readers(session, plan.transport)
    files = plan.factory.files.snapshot()
    return store_plan(Campaigns(session.database), plan, files, stamp(at))


def store_plan(
    campaigns: Campaigns,
    plan: Plan,
    files: Mapping[str, bytes],
    at: str | None = None,
    kind: str = "issue",
) -> int:
    """Store a planned campaign with the settings it is sent with (scheduled ``at``, or a
    list's welcome, which the public archive does not show)."""
    options = plan.options
    recorded = {"concurrency": options.concurrency, "rate": options.rate,
                "in_flight_limit": options.in_flight_limit, "key": plan.recipe.key,
                "transport": plan.transport.description, "files": True,
                "setup": setup_of(plan.recipe.settings)}  # fmt: skip
    copy = plan.editions[0].archive_html if kind == "issue" else ""
    return campaigns.create(plan.audience, plan.report.subject, str(plan.report.path),
                            plan.source, recorded, copy, plan.editions, plan.edition_of, files,
                            kind=kind, scheduled_at=at, once=not plan.again)  # fmt: skip


async def continue_campaign(
    session: Session,
    campaign_id: int,
    statuses: Sequence[str] = RESUME,
    overrides: Overrides = NO_OVERRIDES,
    on_start: Callable[[int, str], None] = lambda total, transport: None,
    still: Callable[[CampaignInfo], bool] = lambda info: True,
    worker: str = "",
) -> RunResult:
    """Deliver a stored campaign's deliveries in ``statuses`` (RESUME: all not yet sent; RETRY:
    the deferred ones). ``on_start`` hears how many and through what, before the first.
    ``still`` is asked once the lock is held: False (the scheduler's reason to start it has
    gone meanwhile, say the editor moved it) leaves the campaign as it is. A ``worker`` (named,
    `campaigns work`) is one of many processes on the campaign: it claims its deliveries."""
    settings, database = session.settings, session.database
    transport = choose_transport(settings, overrides.outbox)
    ready_for_readers(session, transport)
    with database.campaign_lock(campaign_id, shared=bool(worker)):
        campaigns = Campaigns(database)
        info = campaigns.get(campaign_id)
        if info.status == "cancelled":
            raise InputError(f"campaign {campaign_id} was cancelled")
        if not still(info):
            return RunResult(campaign_id, Progress(0))
        if worker:  # perhaps on another host: with the same secret and templates
            check_same_setup(campaign_id, info.settings.get("setup", {}), settings)
        remaining = tuple(lists.of_campaign(database, campaign_id))  # a deleted one is skipped
        if not remaining:
            raise InputError(
                f"campaign {campaign_id}: its lists were deleted ({', '.join(info.lists)})"
            )
        chosen = Audience(remaining)
        if info.status == "scheduled":  # its readers are those of its lists when it starts
            chosen = audience(database, [found.slug for found in remaining], info.segment or None)
        rows = campaign_editions.sources(database, campaign_id)
        editions = stored_editions(rows or [("", info.report_path, info.source)])
        # The files as the first run read them (a campaign from before they were kept: disk).
        files = campaign_editions.stored_files(database, campaign_id)
        kept = files if info.settings.get("files") else None
        recipe = recipe_for(session, editions, chosen, str(info.settings.get("key", "c")), kept)
        if info.kind == "welcome":  # a welcome is not an issue: the archive does not show it
            recipe = replace(recipe, archived=False)
        factory = MessageFactory(recipe)
        if info.status == "scheduled":
            with database.transaction() as db:
                snapshot_readers(db, campaign_id, chosen, factory.editions.chooser.sql())
            database.analyze("deliveries")
        options = replace(resume_options(session, info, overrides), stop_on_render=bool(worker))
        campaigns.widen_bound(campaign_id, options.in_flight_limit)
        lease, bound = settings.send.lease_seconds, options.in_flight_limit
        log = (
            ClaimLog(database, campaign_id, worker, options.rate, lease, in_flight=bound)
            if worker
            else CampaignLog(database, campaign_id, statuses)
        )
        total = log.count()
        if total == 0:
            if info.status not in ("done", "cancelled"):  # nothing left (or nobody): it is done
                log.start()
                log.finish(None)
            return RunResult(campaign_id, Progress(0))
        if not worker:  # each worker would read every reader: the send checked them once
            _check_pending(factory, log)
        on_start(total, transport.description)
        pool = build_pool(settings, recipe)
        async with pool or contextlib.nullcontext():
            progress = await _run(
                session, transport, log, factory, pool, campaign_id, options, total, None
            )
    info = campaigns.get(campaign_id)
    return RunResult.of(campaign_id, progress, info.counts, info.status)


async def send_test(
    session: Session,
    report: Report,
    chosen: Audience,
    addresses: Sequence[Address],
    overrides: Overrides = NO_OVERRIDES,
    test_as: str | None = None,
) -> RunResult:
    """Send the report, its subject marked [TEST], only to ``addresses``, each as the subscriber
    ``test_as`` names, else as the subscriber of that address if there is one, else as the
    placeholder reader; nothing is recorded."""
    transport = choose_transport(session.settings, overrides.outbox)
    ready_for_readers(session, transport)
    secret = load_secret(session.settings.workspace)
    if gone := suppressed_among(session.database, secret, [a.email for a in addresses]):
        email, status = next(iter(gone.items()))
        raise InputError(f"--test {email}: {status}; a test goes to nobody blocked, bounced or"
                         " erased, whoever asks (test to an address of your own)")  # fmt: skip
    shown_as = find_reader(session.database, test_as) if test_as is not None else None
    if test_as is not None and shown_as is None:
        raise NotFoundError("subscriber", test_as, "--test-as takes a reader's address")
    marked = [replace(e, report=replace(e.report, subject=f"[TEST] {e.report.subject}"))
              for e in read_editions(report)]  # fmt: skip
    recipe = recipe_for(session, marked, chosen, f"c{os.urandom(3).hex()}")
    readers = [
        replace(shown_as or find_reader(session.database, a.email) or PLACEHOLDER_READER,
                id=i, email=a.email, smtputf8=a.smtputf8)
        for i, a in enumerate(addresses, start=1)
    ]  # fmt: skip
    factory = MessageFactory(recipe)
    factory.editions.check(readers)
    options = run_options(session, overrides)
    pool = build_pool(session.settings, recipe)
    async with pool or contextlib.nullcontext():
        progress = await _run(session, transport, MemoryLog(readers), factory,
                              pool, None, options, len(readers), None)  # fmt: skip
    return RunResult(None, progress)


def _check_pending(factory: MessageFactory, log: CampaignLog) -> None:
    """Render the message of every reader still to be sent to, as a dry run does: a reader it
    fails for (changed attributes, changed templates) stops the run before the first message."""
    after = 0
    while batch := log.peek(after, 1000):
        factory.editions.check(delivery.reader for delivery in batch if delivery.eligible)
        after = batch[-1].reader.id


async def _run(
    session: Session,
    transport: Transport,
    log: DeliveryLog,
    factory: MessageFactory,
    pool: BuildPool | None,
    campaign_id: int | None,
    options: SendOptions,
    total: int,
    first: Connection | None,
) -> Progress:
    """One pass of the pipeline, over ``first`` and more connections; with ``pool`` (already
    started) the messages are built in its processes."""
    if campaign_id is not None:
        options = with_verp(session.settings, options, campaign_id, factory.tokens)
    build = campaign_builder(factory, pool, campaign_id)
    pipeline = Pipeline(log, transport, build, options, total, session.on_progress, session.control)
    try:
        return await pipeline.run(first)
    except BaseException as error:
        if first is not None and not pipeline.workers:
            await first.close()  # the pipeline never took it over
        if isinstance(error, StoreError) and campaign_id is not None and pipeline.workers:
            raise _stopped(error, campaign_id, len(pipeline.writer.unrecorded)) from None
        raise


def _stopped(error: StoreError, campaign_id: int, unrecorded: int) -> StoreError:
    """The database went away while the campaign was sending (a restart, a lost network): it
    could not even be marked paused. The error says what was left unrecorded and how to go on."""
    lost = f"{unrecorded} result{'s' * (unrecorded != 1)} not recorded, sent again on resume"
    return type(error)(error.path, f"{error.reason}; campaign {campaign_id} stopped ({lost}):"
                      f" once it answers, mailer campaigns resume {campaign_id}")  # fmt: skip
