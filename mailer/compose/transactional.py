"""Transactional messages to one reader outside any issue, each from a text and an HTML template."""

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
from mailer.compose.templates import Loader, sandbox
from mailer.config import NewsletterSettings
from mailer.errors import FileInputError


def build_notice(
    newsletter: NewsletterSettings,
    to: str,
    smtputf8: bool,
    names: tuple[str, str],
    subject: str,
    context: dict[str, Any],
    templates: Sequence[Path],
    kind: str,
) -> bytes:
    """The message to ``to`` from the templates ``names`` (text, HTML) as CRLF bytes. Its
    Subject is the text template's ``subject`` variable, else ``subject``; ``context`` has
    ``lang`` (one of translations.languages()); ``kind`` starts its Message-ID."""
    context = {"newsletter": newsletter, **context}
    own_subject, text = _render(templates, names[0], context, html=False)
    _, html = _render(templates, names[1], context, html=True)
    html = inline_css(html, names[1])
    message = EmailMessage(policy=email.policy.SMTPUTF8 if smtputf8 else email.policy.SMTP)
    sender_name, sender_addr = parseaddr(mime.clean(newsletter.sender))
    message["From"] = _address(sender_name, sender_addr)
    message["To"] = _address("", to)
    message["Subject"] = mime.clean(own_subject or subject)
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_msgid(kind, domain=mime.domain_of(sender_addr))
    message["Auto-Submitted"] = "auto-generated"
    reply_name, reply_addr = parseaddr(mime.clean(newsletter.reply_to))
    if reply_addr:
        message["Reply-To"] = _address(reply_name, reply_addr)
    message.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    message.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    for part in message.iter_parts():
        del part["MIME-Version"]  # add_alternative copies it into the part; only the top needs it
    return message.as_bytes()


def notice_language(*wanted: str) -> str:
    """The language a notice is written in: the first of ``wanted`` we have, else English."""
    return translations.best_language([w for w in wanted if w]) or translations.SOURCE


def _address(name: str, addr: str) -> Address:
    """An Address from parts, so that UTF-8 local parts (SMTPUTF8 readers) are accepted."""
    local, _, domain = mime.address(addr).rpartition("@")
    return Address(mime.clean(name), username=local, domain=domain)


def _render(
    templates: Sequence[Path], name: str, context: dict[str, Any], html: bool
) -> tuple[str, str]:
    """Return (the template's ``subject`` variable or '', its output)."""
    env = sandbox(Loader([str(path) for path in templates]), html)
    try:
        module = env.get_template(name).make_module(context)
    except jinja2.TemplateNotFound:
        raise FileInputError(name, "template not found") from None
    except jinja2.TemplateSyntaxError as error:
        raise FileInputError(error.filename or name, error.message or "", error.lineno) from None
    except jinja2.UndefinedError as error:
        raise FileInputError(name, error.message or str(error)) from None
    return str(getattr(module, "subject", "")), str(module)
