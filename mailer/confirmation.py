"""The opt-in confirmation message: rendered from templates/confirm.*.j2, sent by a transport."""

from __future__ import annotations

import asyncio
import contextlib
import email.policy
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from pathlib import Path
from typing import Any, Protocol

import jinja2

from mailer import mime
from mailer.config import NewsletterSettings, Settings
from mailer.errors import FileInputError, MailerError
from mailer.models import MailingList, Member, Reply
from mailer.tokens import Signer, load_secret

TEXT_TEMPLATE = "confirm.txt.j2"
HTML_TEMPLATE = "confirm.html.j2"


class Connection(Protocol):
    async def send(self, sender: str, recipient: str, message: bytes, smtputf8: bool) -> Reply: ...

    async def close(self) -> None: ...


class Transport(Protocol):
    async def connect(self) -> Connection: ...


def confirm_url(base_url: str, signer: Signer, subscriber_id: int, list_id: int) -> str:
    return f"{base_url.rstrip('/')}/c/{signer.make('c', subscriber_id, list_id)}"


def build_confirmation(
    newsletter: NewsletterSettings,
    mailing_list: MailingList,
    member: Member,
    url: str,
    templates: Sequence[Path],
) -> bytes:
    """Return the confirmation message for ``member`` as CRLF bytes, ready for SMTP DATA."""
    context: dict[str, Any] = {
        "newsletter": newsletter,
        "list": mailing_list,
        "subscriber": {"email": mime.clean(member.email), "name": mime.clean(member.name)},
        "confirm_url": url,
    }
    subject, text = _render(templates, TEXT_TEMPLATE, context, html=False)
    _, html = _render(templates, HTML_TEMPLATE, context, html=True)
    policy = email.policy.SMTPUTF8 if member.smtputf8 else email.policy.SMTP
    message = EmailMessage(policy=policy)
    sender_name, sender_addr = parseaddr(mime.clean(newsletter.sender))
    message["From"] = _address(sender_name, sender_addr)
    message["To"] = _address(member.name, member.email)
    message["Subject"] = mime.clean(subject or f"Confirm your subscription to {mailing_list.name}")
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_msgid("confirm", domain=mime.domain_of(sender_addr))
    message["Auto-Submitted"] = "auto-generated"
    reply_name, reply_addr = parseaddr(mime.clean(newsletter.reply_to))
    if reply_addr:
        message["Reply-To"] = _address(reply_name, reply_addr)
    message.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    message.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    for part in message.iter_parts():
        del part["MIME-Version"]  # add_alternative copies it into the part; only the top needs it
    return message.as_bytes()


def _address(name: str, addr: str) -> Address:
    """An Address from parts, so that UTF-8 local parts (SMTPUTF8 readers) are accepted."""
    local, _, domain = mime.address(addr).rpartition("@")
    return Address(mime.clean(name), username=local, domain=domain)


def _render(
    templates: Sequence[Path], name: str, context: dict[str, Any], html: bool
) -> tuple[str, str]:
    """Return (the template's ``subject`` variable or '', its output)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(path) for path in templates]),
        autoescape=html,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    try:
        module = env.get_template(name).make_module(context)
    except jinja2.TemplateNotFound:
        raise FileInputError(name, "template not found") from None
    except jinja2.TemplateSyntaxError as error:
        raise FileInputError(error.filename or name, error.message or "", error.lineno) from None
    except jinja2.UndefinedError as error:
        raise FileInputError(name, error.message or str(error)) from None
    return str(getattr(module, "subject", "")), str(module)


async def send_confirmation(
    settings: Settings,
    transport: Transport,
    mailing_list: MailingList,
    member: Member,
    templates: Sequence[Path],
) -> Reply:
    """Sign a confirm link for ``member`` and deliver the message; the server's answer is data,
    an unreachable server raises TransportError."""
    signer = Signer(load_secret(settings.workspace))
    url = confirm_url(settings.newsletter.base_url, signer, member.id, mailing_list.id)
    message = build_confirmation(settings.newsletter, mailing_list, member, url, templates)
    sender = settings.smtp.envelope_sender or parseaddr(settings.newsletter.sender)[1]
    connection = await transport.connect()
    try:
        return await connection.send(sender, member.email, message, member.smtputf8)
    finally:
        await connection.close()


class Confirmations:
    """One task sends the web form's confirmation messages, in order, after the page answered
    (so the answer takes as long whether or not a message goes out); problems go to a callback."""

    def __init__(
        self,
        settings: Settings,
        transport: Transport,
        templates: Sequence[Path],
        on_problem: Callable[[Member, str], None],
        capacity: int = 1000,
    ) -> None:
        self.settings, self.transport, self.templates = settings, transport, templates
        self.on_problem, self.capacity = on_problem, capacity
        self.queue: asyncio.Queue[tuple[MailingList, Member]] | None = None
        self.worker: asyncio.Task[None] | None = None

    def put(self, mailing_list: MailingList, member: Member) -> None:
        if self.queue is None:  # created in the serving loop, on first use
            self.queue = asyncio.Queue(self.capacity)
            self.worker = asyncio.get_running_loop().create_task(self._run(self.queue))
        try:
            self.queue.put_nowait((mailing_list, member))
        except asyncio.QueueFull:
            self.on_problem(member, "not sent: too many confirmations waiting")

    async def _run(self, queue: asyncio.Queue[tuple[MailingList, Member]]) -> None:
        while True:
            mailing_list, member = await queue.get()
            try:
                reply = await send_confirmation(
                    self.settings, self.transport, mailing_list, member, self.templates
                )
                if not reply.accepted:
                    self.on_problem(member, f"refused: {reply.code} {reply.text}")
            except MailerError as error:
                self.on_problem(member, f"not sent: {error}")
            except Exception as error:  # keep serving the next ones whatever happened
                self.on_problem(member, f"failed: {type(error).__name__}: {error}")
            finally:
                queue.task_done()

    async def drain(self, timeout: float) -> None:
        """Wait (at most ``timeout`` seconds) for the waiting messages, then stop the task."""
        if self.queue is None or self.worker is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.queue.join(), timeout)
        self.worker.cancel()
