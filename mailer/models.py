"""Plain records shared across packages: lists, readers, memberships, server replies."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

MAX_LANG = 35  # characters of a language tag (BCP 47 advises room for at least 35)


class MembershipStatus(StrEnum):
    UNCONFIRMED = "unconfirmed"
    CONFIRMED = "confirmed"
    UNSUBSCRIBED = "unsubscribed"


class SubscriberStatus(StrEnum):
    ACTIVE = "active"
    BLOCKLISTED = "blocklisted"
    BOUNCED = "bounced"
    ERASED = "erased"


class Outcome(StrEnum):
    """What adding one row to a list did."""

    ADDED = "added"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    SKIPPED = "skipped"  # unsubscribed, bounced or blocklisted, and not --resubscribe


@dataclass(frozen=True, slots=True)
class MailingList:
    id: int
    slug: str
    name: str
    double_opt_in: bool
    public_archive: bool = False
    public_form: bool = False
    created_at: str = ""

    @property
    def opt_in(self) -> str:
        return "double" if self.double_opt_in else "single"


@dataclass(frozen=True, slots=True)
class ListSummary:
    list: MailingList
    counts: dict[str, int]


@dataclass(frozen=True, slots=True)
class Candidate:
    """One reader to put on a list: a validated address plus what we know of them."""

    email: str
    smtputf8: bool
    name: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)
    line: int = 0
    consent: Consent | None = None  # how they joined; None: now, by whoever adds them
    tags: tuple[str, ...] = ()
    lang: str = ""


@dataclass(frozen=True, slots=True)
class Consent:
    """How and when a reader joined a list, as a membership keeps it (GDPR article 7: the
    controller must be able to show consent). Times are stored stamps (UTC ISO 8601)."""

    source: str  # import:FILE, form, cli, preferences
    joined_at: str = ""  # '' : now
    confirmed_at: str = ""
    ip: str = ""


@dataclass(frozen=True, slots=True)
class Reader:
    """One reader, as every message is composed and sent for them (``subscriber`` in
    templates). ``id`` 0 is a reader who is not in the database (a preview, a test send).
    ``lang`` is the language they read (BCP 47, '' when unknown): it picks their edition, and
    for a stored campaign's delivery it is the edition chosen when the campaign was created."""

    id: int
    email: str
    name: str = ""
    attributes: Mapping[str, Any] = field(default_factory=dict)
    smtputf8: bool = False
    lang: str = ""


class AnyAttributes(dict[str, Any]):
    """The stand-in reader's attributes: every key exists, so a campaign can be checked."""

    def __missing__(self, key: str) -> str:
        return ""


# The one stand-in for a real reader: previews, checks, test sends to strangers, the archive.
PLACEHOLDER_READER = Reader(0, "reader@example.org", "", AnyAttributes())


@dataclass(frozen=True, slots=True)
class Member:
    """A subscriber as seen through one list."""

    id: int
    email: str
    name: str
    attributes: dict[str, Any]
    status: str
    subscriber_status: str
    smtputf8: bool
    updated_at: str = ""  # when the membership last changed
    joined_at: str = ""  # when the reader first joined this list
    changed_at: str = ""  # the latest change on this list or of the reader (bounced, blocked)
    source: str = (
        ""  # how they joined: import:FILE, form, cli, preferences ('' before consent records)
    )
    ip: str = ""  # the address they joined from, when known (the form)
    confirmed_at: str = ""  # when they confirmed (or were added confirmed); '' if never
    lang: str = ""  # the reader's language (BCP 47), '' when unknown

    @property
    def reader(self) -> Reader:
        return Reader(self.id, self.email, self.name, self.attributes, self.smtputf8, self.lang)


# What a server's text may not keep: control characters (C0, DEL, C1: a terminal may act on
# them) and the bidi overrides that reorder what is shown; a multi-line reply's line feeds stay.
UNSAID = dict.fromkeys(
    [*range(0, 9), *range(11, 32), *range(127, 160), *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
)
MARKED = dict.fromkeys(UNSAID, "\ufffd")
# Lone surrogates: the bytes that were not UTF-8 where text was decoded with surrogateescape
# (aiosmtplib's replies, file names), or a JSON escape of half an emoji. No database takes them.
SURROGATES = re.compile("[\ud800-\udfff]")


def heard(text: str, keep_apart: bool = False) -> str:
    """A server's text as it can be stored and shown: the bytes that were not UTF-8 (which
    aiosmtplib keeps as lone surrogates, that no database or terminal takes) become U+FFFD,
    and control characters go; with ``keep_apart`` they become U+FFFD too, so that texts
    that differ only in them (an address to match, an id) stay different."""
    if text.isprintable():
        return text
    return SURROGATES.sub("\ufffd", text).translate(MARKED if keep_apart else UNSAID)


def heard_line(text: str) -> str:
    """``heard``, on one line (a reply may have several): for an error line or a log."""
    return " ".join(heard(text).split())


@dataclass(frozen=True, slots=True)
class Reply:
    """What the server answered for one message: a 2xx, 4xx or 5xx code, its text, and the
    stage that answered ("mail" is a refusal of the sender or session, not of this reader;
    "unanswered" is mailer's own, for a reply lost once the message had gone whole).
    The text is made storable (``heard``) whoever builds the reply."""

    code: int
    text: str
    stage: str = "data"

    def __post_init__(self) -> None:
        if not self.text.isprintable():
            object.__setattr__(self, "text", heard(self.text))

    @property
    def permanent(self) -> bool:
        return self.code >= 500

    @property
    def line(self) -> str:
        """Code and text on one line (a reply may have several), for an error line or a log."""
        return heard_line(f"{self.code} {self.text}")

    @property
    def accepted(self) -> bool:
        return 200 <= self.code < 300
