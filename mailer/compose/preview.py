"""Render a report for one reader into message.eml, message.html and message.txt."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from mailer.compose.compiled import compile_campaign, preview_links
from mailer.compose.report import load_report
from mailer.config import Settings
from mailer.errors import FileInputError, NotFoundError
from mailer.models import PLACEHOLDER_READER, MailingList, Member, Reader


def preview_list(settings: Settings) -> MailingList:
    """The stand-in list used when no list is named."""
    return MailingList(id=0, slug="preview", name=settings.newsletter.name, double_opt_in=False)


def choose_reader(members: list[Member], email: str | None, list_slug: str) -> Reader:
    """The named member, else the list's first member, else a placeholder reader."""
    if email is not None:
        wanted = email.strip().casefold()
        for member in members:
            if member.email.casefold() == wanted:
                return member.reader
        if list_slug:
            raise NotFoundError("subscriber", email, f"not on list {list_slug!r}")
        return replace(PLACEHOLDER_READER, email=email.strip())
    return members[0].reader if members else PLACEHOLDER_READER


def render_preview(
    report_path: Path,
    settings: Settings,
    out_dir: Path,
    *,
    mailing_list: MailingList | None = None,
    members: Iterable[Member] = (),
    email: str | None = None,
) -> list[Path]:
    """Compile the report, check it for every member given, write the three files for one."""
    report = load_report(report_path)
    listing = mailing_list or preview_list(settings)
    campaign = compile_campaign(settings, report, listing, "preview")
    everyone = list(members)
    campaign.check(everyone)
    reader = choose_reader(everyone, email, mailing_list.slug if mailing_list else "")
    links = preview_links(settings.newsletter.base_url)
    html, text = campaign.parts(reader, links)
    message = campaign.message(reader, links)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = [out_dir / "message.eml", out_dir / "message.html", out_dir / "message.txt"]
        paths[0].write_bytes(message)
        paths[1].write_text(html, encoding="utf-8")
        paths[2].write_text(text, encoding="utf-8")
    except OSError as error:
        raise FileInputError(out_dir, error.strerror or str(error)) from None
    return paths
