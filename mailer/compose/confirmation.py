"""The opt-in confirmation message, rendered from templates/confirm.*.j2 into CRLF bytes."""

from __future__ import annotations

import email.policy
from collections.abc import Sequence
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from pathlib import Path
from typing import Any

import jinja2

from mailer.compose import mime, translations
from mailer.compose.styling import inline_css
from mailer.compose.templates import sandbox
from mailer.config import NewsletterSettings
from mailer.errors import FileInputError
from mailer.models import MailingList, Member
from mailer.tokens import Signer

TEXT_TEMPLATE = "confirm.txt.j2"
HTML_TEMPLATE = "confirm.html.j2"


def confirm_url(
    base_url: str, signer: Signer, subscriber_id: int, list_id: int, issued: int
) -> str:
    """The link that confirms this request: it says when it was issued, so it expires."""
    return f"{base_url.rstrip('/')}/c/{signer.make('c', subscriber_id, list_id, issued)}"


def build_confirmation(
    newsletter: NewsletterSettings,
    mailing_list: MailingList,
    member: Member,
    url: str,
    templates: Sequence[Path],
    lang: str = "",
) -> bytes:
    """Return the confirmation message for ``member`` as CRLF bytes, ready for SMTP DATA. It
    greets nobody by name: whoever filled in the form chose it, so it is not the reader's word
    (``subscriber.name`` stays empty, for templates a workspace overrode). It is written in
    ``lang`` (the form page's language), else the reader's, else English."""
    shown = translations.best_language([lang or member.lang]) or translations.SOURCE
    context: dict[str, Any] = {
        "lang": shown,
        "newsletter": newsletter,
        "list": mailing_list,
        "subscriber": {"email": mime.clean(member.email), "name": ""},
        "confirm_url": url,
    }
    subject, text = _render(templates, TEXT_TEMPLATE, context, html=False)
    _, html = _render(templates, HTML_TEMPLATE, context, html=True)
    html = inline_css(html, HTML_TEMPLATE)
    policy = email.policy.SMTPUTF8 if member.smtputf8 else email.policy.SMTP
    message = EmailMessage(policy=policy)
    sender_name, sender_addr = parseaddr(mime.clean(newsletter.sender))
    message["From"] = _address(sender_name, sender_addr)
    message["To"] = _address("", member.email)
    asking = "Please confirm your subscription to %(list)s"  # as templates/confirm.txt.j2
    message["Subject"] = mime.clean(
        subject or translations.text(shown, asking, list=mailing_list.name)
    )
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
    env = sandbox(jinja2.FileSystemLoader([str(path) for path in templates]), html)
    try:
        module = env.get_template(name).make_module(context)
    except jinja2.TemplateNotFound:
        raise FileInputError(name, "template not found") from None
    except jinja2.TemplateSyntaxError as error:
        raise FileInputError(error.filename or name, error.message or "", error.lineno) from None
    except jinja2.UndefinedError as error:
        raise FileInputError(name, error.message or str(error)) from None
    return str(getattr(module, "subject", "")), str(module)
