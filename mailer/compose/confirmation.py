"""The opt-in confirmation message, rendered from templates/confirm.*.j2 into CRLF bytes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mailer.compose import mime, translations
from mailer.compose.transactional import build_notice, notice_language
from mailer.config import NewsletterSettings
from mailer.models import MailingList, Member
from mailer.tokens import Signer

TEMPLATES = ("confirm.txt.j2", "confirm.html.j2")
ASKING = "Please confirm your subscription to %(list)s"  # as templates/confirm.txt.j2


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
    shown = notice_language(lang or member.lang)
    context = {
        "lang": shown,
        "list": mailing_list,
        "subscriber": {"email": mime.clean(member.email), "name": ""},
        "confirm_url": url,
    }
    subject = translations.text(shown, ASKING, list=mailing_list.name)
    return build_notice(newsletter, member.email, member.smtputf8, TEMPLATES, subject, context,
                        templates, "confirm")  # fmt: skip
