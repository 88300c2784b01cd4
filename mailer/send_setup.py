"""Wires settings, templates, tokens, DKIM and transports into what the send pipeline takes."""

from __future__ import annotations

import asyncio
import fcntl
import os
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from email.utils import parseaddr
from pathlib import Path

from mailer import config
from mailer.addresses import normalise
from mailer.build_pool import BuildPool
from mailer.errors import AddressError, InputError
from mailer.message_factory import MessageFactory, Recipe
from mailer.send_types import Build, Ready, Recipient, Render, SendOptions
from mailer.tokens import Signer, load_secret, verp_local_part
from mailer.transport import OutboxTransport, SmtpTransport

CampaignId = Callable[[], int]  # known once the log has started, before the first build


def build_pool(current: config.Settings, recipe: Recipe) -> BuildPool | None:
    """With [dkim] set, worker processes that build and sign the messages (not started yet):
    the signature costs more CPU than the rest of a send. None when messages go unsigned."""
    if not current.dkim.domain:
        return None
    processes = current.dkim.processes or min(4, max(1, (os.cpu_count() or 1) - 1))
    return BuildPool(recipe, processes)


def message_builder(factory: MessageFactory, campaign_id: CampaignId | None = None) -> Render:
    """Per recipient, in this process (dry runs and checks; campaigns use campaign_builder)."""

    def build(recipient: Recipient) -> tuple[bytes, str]:
        return factory.make(recipient, campaign_id() if campaign_id is not None else None)

    return build


def campaign_builder(
    factory: MessageFactory, pool: BuildPool | None, campaign_id: CampaignId | None = None
) -> Build:
    """As message_builder, for the send pipeline: with ``pool`` the messages are built in
    its worker processes, and this process only numbers them."""
    if pool is None:
        render = message_builder(factory, campaign_id)

        def build(recipient: Recipient) -> tuple[Awaitable[bytes], str]:
            message, message_id = render(recipient)
            return Ready(message), message_id

        return build

    skeleton = factory.compiled.skeleton

    def build_in_pool(recipient: Recipient) -> tuple[Awaitable[bytes], str]:
        message_id = skeleton.message_id(recipient.subscriber_id)
        current = campaign_id() if campaign_id is not None else None
        return pool.build(recipient, current, message_id), message_id

    return build_in_pool


def choose_transport(
    current: config.Settings, outbox: Path | None
) -> OutboxTransport | SmtpTransport:
    if outbox is not None:
        return OutboxTransport(outbox)
    if not current.smtp.host:
        return OutboxTransport(current.outbox_path)
    return SmtpTransport(current.smtp)


def return_path(current: config.Settings) -> str:
    """The envelope sender: [smtp] envelope_sender, else the From address; validated."""
    setting = "smtp.envelope_sender" if current.smtp.envelope_sender else "newsletter.sender"
    raw = current.smtp.envelope_sender or current.newsletter.sender
    address = parseaddr(raw)[1]
    if not address or (current.smtp.envelope_sender and address != raw.strip()):
        raise InputError(f"{setting}: {raw!r} must be a bare address such as bounces@example.org")
    try:
        return normalise(address).email
    except AddressError as error:
        raise InputError(f"{setting}: {error}") from None


def send_options(
    current: config.Settings,
    concurrency: int | None,
    rate: float | None,
    limit: int,
    campaign_id: CampaignId | None = None,
) -> SendOptions:
    """Options from settings and flags; with [bounces] verp and a campaign, a VERP return path."""
    sender = return_path(current)
    sender_for = None
    if current.bounces.verp and campaign_id is not None:
        domain = current.bounces.domain or sender.rpartition("@")[2]
        signer = Signer(load_secret(current.workspace))

        def sender_for(recipient: Recipient) -> str:
            local = verp_local_part(signer, recipient.subscriber_id, campaign_id())
            return f"{local}@{domain}"

    return SendOptions(
        sender=sender,
        sender_for=sender_for,
        concurrency=concurrency or current.smtp.concurrency,
        rate=current.smtp.rate if rate is None else rate,
        max_per_connection=current.smtp.max_per_connection,
        max_attempts=current.send.max_attempts,
        retry_delay=current.send.retry_delay,
        max_consecutive_failures=current.send.max_consecutive_failures,
        limit=limit,
    )


@contextmanager
def one_sender(current: config.Settings, campaign_id: int) -> Iterator[None]:
    """One process at a time per campaign: an flock, which the OS drops if the process dies."""
    path = current.database_path.parent / f".campaign-{campaign_id}.lock"
    try:
        handle = path.open("a")
    except OSError as error:
        raise InputError(f"cannot lock {path}: {error.strerror}") from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(
                f"campaign {campaign_id} is being sent by another mailer process"
            ) from None
        yield


def runner() -> asyncio.Runner:
    """An event loop for one command: uvloop when installed (the `fast` extra), else asyncio."""
    try:
        import uvloop
    except ImportError:
        return asyncio.Runner()
    return asyncio.Runner(loop_factory=uvloop.new_event_loop)
