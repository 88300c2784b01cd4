"""Wires settings, templates, tokens, DKIM and transports into what the send pipeline takes."""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from email.utils import parseaddr
from pathlib import Path

from mailer import config
from mailer.addresses import normalise
from mailer.campaign import Build, Ready, Recipient, Render, SendOptions
from mailer.dkim_pool import SigningPool
from mailer.dkim_sign import DkimSigner
from mailer.errors import AddressError, InputError
from mailer.models import MailingList
from mailer.render import CompiledCampaign, Links, Reader, template_dirs
from mailer.report import Report
from mailer.tokens import Signer, load_secret, verp_local_part
from mailer.transport import OutboxTransport, SmtpTransport

CampaignId = Callable[[], int]  # known once the log has started, before the first build


def compile_campaign(
    current: config.Settings, report: Report, mailing_list: MailingList, key: str
) -> CompiledCampaign:
    dirs = template_dirs(current.templates_dir)
    return CompiledCampaign(
        report, current.newsletter, mailing_list, templates=dirs, campaign_id=key
    )


def dkim_signer(current: config.Settings) -> DkimSigner | None:
    """The configured DKIM signer, or None when [dkim] domain is empty."""
    dkim = current.dkim
    if not dkim.domain:
        return None
    return DkimSigner.from_file(dkim.domain, dkim.selector, current.workspace / dkim.key_file)


def signing_pool(current: config.Settings) -> SigningPool | None:
    """Worker processes for a campaign's DKIM signatures (not started), or None unsigned."""
    signer = dkim_signer(current)
    if signer is None:
        return None
    processes = current.dkim.processes or min(4, max(1, (os.cpu_count() or 1) - 1))
    return SigningPool(signer, processes)


def message_builder(
    compiled: CompiledCampaign,
    current: config.Settings,
    mailing_list: MailingList,
    *,
    campaign_id: CampaignId | None = None,
) -> Render:
    """Per recipient, in this process: sign the unsubscribe link, render the personal parts,
    assemble the bytes, DKIM-sign them (dry runs and checks; campaigns use campaign_builder)."""
    personal = _personaliser(current, mailing_list, campaign_id)
    dkim = dkim_signer(current)

    def build(recipient: Recipient) -> tuple[bytes, str]:
        if dkim is None:
            return compiled.build(*personal(recipient))
        message, message_id, relaxed = compiled.build_relaxed(*personal(recipient))
        return dkim.sign(message, _sha256(relaxed)), message_id

    return build


def campaign_builder(
    compiled: CompiledCampaign,
    current: config.Settings,
    mailing_list: MailingList,
    pool: SigningPool | None,
    *,
    campaign_id: CampaignId | None = None,
) -> Build:
    """As message_builder, for the send pipeline: the DKIM key operation runs in ``pool``."""
    personal = _personaliser(current, mailing_list, campaign_id)
    if pool is None:

        def build(recipient: Recipient) -> tuple[Awaitable[bytes], str]:
            message, message_id = compiled.build(*personal(recipient))
            return Ready(message), message_id

        return build

    def build_signed(recipient: Recipient) -> tuple[Awaitable[bytes], str]:
        message, message_id, relaxed = compiled.build_relaxed(*personal(recipient))
        return pool.sign(message, _sha256(relaxed)), message_id

    return build_signed


def _sha256(data: bytes | None) -> bytes | None:
    return hashlib.sha256(data).digest() if data is not None else None


def _personaliser(
    current: config.Settings, mailing_list: MailingList, campaign_id: CampaignId | None
) -> Callable[[Recipient], tuple[Reader, Links]]:
    """The reader and links of one recipient. Without a campaign (test sends) the links carry
    no real token."""
    base = current.newsletter.base_url.rstrip("/")
    signer = Signer(load_secret(current.workspace))
    archive = campaign_id if mailing_list.public_archive else None

    def personal(recipient: Recipient) -> tuple[Reader, Links]:
        token = "test"
        if campaign_id is not None:
            token = signer.make("u", recipient.subscriber_id, mailing_list.id)
        reader = Reader(
            recipient.email, recipient.name, recipient.attributes, recipient.subscriber_id
        )
        view_online = f"{base}/archive/{archive()}" if archive is not None else ""
        return reader, Links(unsubscribe=f"{base}/u/{token}", view_online=view_online)

    return personal


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
