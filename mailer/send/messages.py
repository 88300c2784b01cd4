"""One reader's finished message: their edition of the compiled campaign, their links, DKIM."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from mailer import config
from mailer.compose.compiled import Links
from mailer.compose.editions import CompiledEditions, Compiler, Edition
from mailer.compose.report import Report
from mailer.compose.report_files import ReportFiles
from mailer.models import MailingList, Reader
from mailer.send.dkim import dkim_signer
from mailer.tokens import Signer, load_secret


@dataclass(frozen=True)
class Recipe:
    """What a campaign's messages are made from: picklable, so that a worker process can set
    up its own MessageFactory."""

    settings: config.Settings
    report: Report
    mailing_list: MailingList  # as templates name it (Audience.shown)
    key: str  # the campaign's key in Message-IDs
    several: bool = False  # sent to several lists: unsubscribe links name the campaign
    editions: tuple[Report, ...] = ()  # the other languages' reports (``report``: the default)
    files: Mapping[str, bytes] | None = None  # a stored campaign's images and attachments
    archived: bool = True  # in the public archive (of a list that has one): messages link to it

    @classmethod
    def of(
        cls,
        settings: config.Settings,
        editions: Sequence[Edition],
        mailing_list: MailingList,
        key: str,
        several: bool = False,
        files: Mapping[str, bytes] | None = None,
    ) -> Recipe:
        """The recipe of a campaign's editions, the default first; ``files``: what it stored
        (None: read from disk)."""
        reports = tuple(edition.report for edition in editions)
        return cls(settings, reports[0], mailing_list, key, several, reports[1:], files)

    def without_passwords(self) -> Recipe:
        """The same recipe with no password in it, to hand to another process."""
        current = self.settings
        bare = replace(
            current,
            smtp=replace(current.smtp, password=""),
            bounces=replace(current.bounces, imap_password=""),
        )
        return replace(self, settings=bare)


class MessageFactory:
    """Makes the finished bytes for one reader: token-signed links, the rendered parts, the
    DKIM signature when [dkim] is set."""

    def __init__(self, recipe: Recipe) -> None:
        current = recipe.settings
        self.files = ReportFiles(recipe.files)
        compiler = Compiler(current, recipe.mailing_list, recipe.key, self.files)
        self.editions = CompiledEditions((recipe.report, *recipe.editions), compiler)
        self.compiled = self.editions.default.campaign
        self.dkim = dkim_signer(current)
        self.mailing_list, self.several = recipe.mailing_list, recipe.several
        self.archived = recipe.archived
        self.base = current.newsletter.base_url.rstrip("/")
        listing = recipe.mailing_list  # the same for every reader: made once per campaign
        self.subscribe = (f"{self.base}/s/{listing.slug}"
                          if listing.public_form and not self.several else "")  # fmt: skip
        self.tokens = Signer(load_secret(current.workspace))

    def make(
        self, reader: Reader, campaign_id: int | None, message_id: str | None = None
    ) -> tuple[list[bytes], str]:
        """Return (message chunks, Message-ID). Without a campaign (test sends) the links carry
        no real token."""
        listing, base = self.mailing_list, self.base
        token = preferences = "test"
        if campaign_id is not None and self.several:  # leave each of its lists at once
            token = self.tokens.make("k", reader.id, campaign_id)
            preferences = self.tokens.make("p", reader.id, 0)
        elif campaign_id is not None:
            token = self.tokens.make("u", reader.id, listing.id)
            preferences = self.tokens.make("p", reader.id, listing.id)
        edition = self.editions.for_reader(reader)
        view_online = ""
        if campaign_id is not None and listing.public_archive and self.archived:
            view_online = f"{base}/archive/{campaign_id}{edition.archive_path}"
        links = Links(unsubscribe=f"{base}/u/{token}", view_online=view_online,
                      preferences=f"{base}/p/{preferences}", subscribe=self.subscribe)  # fmt: skip
        if self.dkim is None:
            return edition.campaign.build(reader, links, message_id=message_id)
        message, message_id, relaxed = edition.campaign.build_relaxed(
            reader, links, message_id=message_id
        )
        body_hash = None
        if relaxed is not None:
            hashing = hashlib.sha256()
            for chunk in relaxed:
                hashing.update(chunk)
            body_hash = hashing.digest()
        return self.dkim.sign(message, body_hash), message_id
