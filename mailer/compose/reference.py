"""The same message built the slow, obvious way with EmailMessage: a yardstick for the fast one."""

from __future__ import annotations

import email.policy
from email.headerregistry import Address
from email.message import EmailMessage

from mailer.compose import mime
from mailer.compose.compiled import CompiledCampaign, Links
from mailer.models import Reader

# Tests and bench/render_bench.py hold the fast per-reader assembly to this.


def reference_message(
    campaign: CompiledCampaign, reader: Reader, links: Links, *, message_id: str, date: str
) -> EmailMessage:
    """Build the same message the slow, obvious way with EmailMessage (for tests only)."""
    html, text = campaign.parts(reader, links)
    skeleton = campaign.skeleton
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"] = _address(*skeleton.sender)
    message["To"] = _address(reader.name, reader.email)
    message["Subject"] = mime.clean(campaign.report.subject)
    message["Date"] = date
    message["Message-ID"] = message_id
    list_name = mime.clean(campaign.list.name)
    message["List-Id"] = f"{list_name} <{skeleton.list_id}>".lstrip()
    unsubscribe = mime.url(links.unsubscribe)
    message["List-Unsubscribe"] = f"<{unsubscribe}>, <{skeleton.mailto}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    if skeleton.reply_to:
        message["Reply-To"] = _address(*skeleton.reply_to)
    message.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    message.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    return message


def _address(name: str, addr: str) -> Address:
    return Address(display_name=mime.clean(name), addr_spec=mime.address(addr))
