"""Which transport a command sends through, and the envelope sender it uses: one place."""

from __future__ import annotations

from email.utils import parseaddr
from pathlib import Path

from mailer import config
from mailer.audience.addresses import normalise
from mailer.errors import AddressError, InputError
from mailer.send.outbox import OutboxTransport
from mailer.send.smtp import SmtpTransport


def choose_transport(
    settings: config.Settings, outbox: Path | None = None
) -> OutboxTransport | SmtpTransport:
    """``outbox`` when given, else SMTP when [smtp] host is set, else the workspace's outbox."""
    if outbox is not None:
        return OutboxTransport(outbox)
    if not settings.smtp.host:
        return OutboxTransport(settings.outbox_path)
    return SmtpTransport(settings.smtp)


def return_path(settings: config.Settings) -> str:
    """The envelope sender: [smtp] envelope_sender, else the From address; validated."""
    setting = "smtp.envelope_sender" if settings.smtp.envelope_sender else "newsletter.sender"
    raw = settings.smtp.envelope_sender or settings.newsletter.sender
    address = parseaddr(raw)[1]
    if not address or (settings.smtp.envelope_sender and address != raw.strip()):
        raise InputError(f"{setting}: {raw!r} must be a bare address such as bounces@example.org")
    try:
        return normalise(address).email
    except AddressError as error:
        raise InputError(f"{setting}: {error}") from None
