"""A change of address's messages (templates/address_*.j2): the confirm link and the notice."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mailer.compose import mime, translations
from mailer.compose.transactional import build_notice, notice_language
from mailer.config import NewsletterSettings
from mailer.tokens import Signer

CONFIRM = ("address_confirm.txt.j2", "address_confirm.html.j2")
NOTICE = ("address_notice.txt.j2", "address_notice.html.j2")
# Subjects when a workspace's own template sets none (as the packaged templates say).
CONFIRM_SUBJECT = "Please confirm your new address for %(name)s"
NOTICE_SUBJECT = "Your address for %(name)s is about to change"


def address_url(base_url: str, signer: Signer, subscriber_id: int, nonce: int, issued: int) -> str:
    """The link that confirms a new address: it names the request and says when it was made."""
    return f"{base_url.rstrip('/')}/a/{signer.make('a', subscriber_id, nonce, issued)}"


def build_address_confirm(
    newsletter: NewsletterSettings,
    to: str,
    smtputf8: bool,
    url: str,
    templates: Sequence[Path],
    lang: str = "",
) -> bytes:
    """The message to the new address ``to``, with the link that confirms it. It names
    neither the reader nor the address used until now: whoever typed ``to`` chose it."""
    context = {"address": mime.clean(to), "confirm_url": url}
    return _build(newsletter, to, smtputf8, CONFIRM, CONFIRM_SUBJECT, context, templates, lang)


def build_address_notice(
    newsletter: NewsletterSettings,
    to: str,
    smtputf8: bool,
    new_address: str,
    preferences_url: str,
    templates: Sequence[Path],
    lang: str = "",
) -> bytes:
    """The notice to the address used until now, ``to``: a change to ``new_address`` (as the
    caller shows it: masked) was asked for, and the preferences page can withdraw it."""
    context = {"address": mime.clean(new_address), "preferences_url": preferences_url}
    return _build(newsletter, to, smtputf8, NOTICE, NOTICE_SUBJECT, context, templates, lang)


def _build(
    newsletter: NewsletterSettings,
    to: str,
    smtputf8: bool,
    names: tuple[str, str],
    fallback: str,
    values: dict[str, Any],
    templates: Sequence[Path],
    lang: str,
) -> bytes:
    shown = notice_language(lang)
    subject = translations.text(shown, fallback, name=newsletter.name)
    return build_notice(newsletter, to, smtputf8, names, subject, {"lang": shown, **values},
                        templates, "address")  # fmt: skip
