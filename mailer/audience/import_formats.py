"""Which column of an import holds which field of a reader: other tools' exports, or --map."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mailer.audience.cleaning import clean
from mailer.audience.formulas import live
from mailer.audience.status.bulk import LEAVING as CHANGES
from mailer.errors import FileInputError, InputError

# What a column may hold (--map COLUMN=FIELD); --map also takes attribute:NAME and ignore.
FIELDS = ("email", "name", "first_name", "last_name", "status", "status_at", "tags", "lang",
          "joined_at", "confirmed_at", "ip")  # fmt: skip
ATTRIBUTE, IGNORE = "attribute:", "ignore"
FORCED = ("confirmed", "unconfirmed", "unsubscribed", "blocklisted")  # what --status may force
LEAVING = frozenset(CHANGES)  # never mailed, whatever forced
# mailer's own export: these columns, then one per attribute (csv_export writes them).
EXPORTED = ("email", "name", "status", "lang", "tags", "source", "joined_at", "confirmed_at", "ip")
# The words a status column may hold (any case), and the status each stands for; '' joins as
# a reader added by the editor does (the list's opt-in, or --confirmed).
STATUS_WORDS: Mapping[str, str | None] = {
    "": None, "confirmed": "confirmed", "subscribed": "confirmed", "unconfirmed": "unconfirmed",
    "pending": "unconfirmed", "unsubscribed": "unsubscribed", "bounced": "bounced",
    "cleaned": "bounced", "blocklisted": "blocklisted", "blocked": "blocklisted",
    "active": "confirmed", "blacklisted": "blocklisted",
}  # fmt: skip
# How far a status keeps a reader from mail: of two a file gives one reader (a status column
# and a column that says they left, or two rows), the deeper stands.
DEPTH = {"unsubscribed": 1, "bounced": 2, "blocklisted": 3}
# Columns that say the reader left, in a file of any format, --map or not: a value there makes
# the row's reader unsubscribed or bounced whatever else it says (never confirmed), dated by it.
LEFT_COLUMNS = (("unsub_time", "unsubscribed"), ("unsubscribed_at", "unsubscribed"),
                ("unsubscribe_time", "unsubscribed"), ("unsubscribed_on", "unsubscribed"),
                ("unsubscription_date", "unsubscribed"), ("clean_time", "bounced"),
                ("cleaned_at", "bounced"), ("bounced_at", "bounced"))  # fmt: skip
# Mailchimp's own columns, in English in every export: the merge fields' labels (Email Address,
# First Name) are translated, or renamed by the editor. Three of these make a Mailchimp export.
MAILCHIMP_OWN = frozenset({"member_rating", "optin_time", "optin_ip", "confirm_time",
                           "confirm_ip", "last_changed", "leid", "euid", "unsub_time",
                           "unsub_campaign_title", "unsub_campaign_id", "unsub_reason",
                           "clean_time", "clean_campaign_title", "clean_campaign_id"})  # fmt: skip
EMAIL_HEADERS = ("email", "e-mail", "email address", "e-mail address", "emailaddress",
                 "email_address", "mail", "adresse e-mail", "adresse email", "courriel",
                 "e-mail-adresse", "e-mail adresse", "emailadresse", "correo electrónico",
                 "dirección de correo electrónico", "indirizzo email", "indirizzo e-mail",
                 "e-mailadres", "endereço de e-mail", "endereço de email")  # fmt: skip


def stronger(first: str | None, then: str | None) -> str | None:
    """Of two statuses for one reader, the one that keeps them further from mail."""
    return then if DEPTH.get(then or "", 0) > DEPTH.get(first or "", 0) else first


# Where two columns of one row give a status: not yet confirmed is further from mail too.
FARTHER = {"unconfirmed": 0.5, **DEPTH}


def farther(first: str | None, then: str | None) -> str | None:
    """``stronger``, where an unconfirmed reader stays unconfirmed beside a confirmed."""
    return then if FARTHER.get(then or "", 0) > FARTHER.get(first or "", 0) else first


@dataclass(frozen=True, slots=True)
class Format:
    """A tool's export: the columns its header always has, and what its columns hold."""

    name: str
    signature: frozenset[str]  # lower-case columns a header must all have
    columns: tuple[tuple[str, str], ...]  # (lower-case column, field); first non-empty wins
    any_of: frozenset[str] = frozenset()  # ... and at least ``enough`` of these, when given
    enough: int = 1
    status: str | None = None  # the status of every row, when the file is of one status
    words: Mapping[str, str | None] = field(default_factory=lambda: STATUS_WORDS)
    tag_separator: str = ","
    json_columns: frozenset[str] = frozenset()  # a JSON object whose keys become attributes
    gone_domain: str = ""  # addresses there stand for readers who asked to be erased
    prefixed: bool = False  # attribute:NAME columns (mailer's export of clashing names)
    email_first: bool = False  # the first column is the address, whatever its label

    def recognises(self, present: set[str]) -> bool:
        found = len(self.any_of & present)
        return self.signature <= present and (not self.any_of or found >= self.enough)


def _formats() -> tuple[Format, ...]:
    first = ("first name", "prénom", "vorname", "nombre", "nome", "voornaam")
    last = ("last name", "nom", "nachname", "apellido", "apellidos", "cognome", "sobrenome",
            "achternaam")  # fmt: skip
    mailchimp = (*((h, "email") for h in EMAIL_HEADERS), *((h, "first_name") for h in first),
                 *((h, "last_name") for h in last), ("optin_time", "joined_at"),
                 ("confirm_time", "confirmed_at"), ("optin_ip", "ip"),
                 ("tags", "tags"))  # fmt: skip

    def chimp(kind: str, also: str, columns: tuple[tuple[str, str], ...], status: str) -> Format:
        return Format(f"Mailchimp ({kind} export)", frozenset({also} - {""}), columns,
                      any_of=MAILCHIMP_OWN, enough=3, status=status, email_first=True)  # fmt: skip

    paying = dict.fromkeys(("regular", "premium", "gifted", "trialed", "churning", "churned",
                            "past_due", "paused", "unpaid", "upgraded"), "confirmed")  # fmt: skip
    mailer = EXPORTED
    return (
        Format("mailer export", frozenset(mailer), tuple((c, c) for c in mailer), prefixed=True),
        chimp("unsubscribed", "unsub_time", (*mailchimp, ("unsub_time", "status_at")),
              "unsubscribed"),
        chimp("cleaned", "clean_time", (*mailchimp, ("clean_time", "status_at")), "bounced"),
        chimp("subscribed", "", mailchimp, "confirmed"),
        Format("listmonk", frozenset({"uuid", "email", "name", "attributes", "status",
                                      "created_at", "updated_at"}),
               (("email", "email"), ("name", "name"), ("status", "status"),
                ("created_at", "joined_at"), ("updated_at", "status_at")),
               words={"": None, "enabled": None, "disabled": "unsubscribed",
                      "blocklisted": "blocklisted"},
               json_columns=frozenset({"attributes"})),
        Format("Substack", frozenset({"email", "email_disabled"}),
               (("email", "email"), ("name", "name"), ("created_at", "joined_at"),
                ("email_disabled", "status")),
               any_of=frozenset({"active_subscription", "expiry", "plan", "first_payment_at"}),
               words={"": None, "false": None, "true": "unsubscribed"},
               gone_domain="deletion-request.substack.com"),
        Format("Buttondown", frozenset({"email", "subscriber_type", "creation_date"}),
               (("email", "email"), ("subscriber_type", "status"),
                ("subscription_date", "joined_at"), ("creation_date", "joined_at"),
                ("ip_address", "ip"), ("unsubscription_date", "status_at"), ("tags", "tags")),
               words={"": None, **paying, "unactivated": "unconfirmed",
                      "unsubscribed": "unsubscribed", "removed": "unsubscribed",
                      "undeliverable": "bounced", "complained": "blocklisted",
                      "spammy": "blocklisted"},
               tag_separator=";", json_columns=frozenset({"metadata"})),
        Format("Ghost", frozenset({"email", "subscribed_to_emails"}),
               (("email", "email"), ("name", "name"), ("created_at", "joined_at"),
                ("labels", "tags"), ("subscribed_to_emails", "status")),
               any_of=frozenset({"complimentary_plan", "stripe_customer_id", "labels", "tiers",
                                 "products"}),
               words={"": None, "true": None, "false": "unsubscribed"}),
    )  # fmt: skip


FORMATS = _formats()
# A generic CSV's status column, by any of these names (a value it does not know is a bad row).
# Not "state": in an address list it is mostly the reader's state or province.
STATUS_COLUMNS = ("status", "subscription_status", "subscription status",
                  "subscriber_status", "subscriber status", "member_status",
                  "member status")  # fmt: skip
GENERIC = Format(
    "generic CSV",
    frozenset(),
    (*((h, "email") for h in EMAIL_HEADERS), ("name", "name"), ("full name", "name"),
     ("fullname", "name"), ("first name", "first_name"), ("first_name", "first_name"),
     ("last name", "last_name"), ("last_name", "last_name"), ("surname", "last_name"),
     *((h, "status") for h in STATUS_COLUMNS), ("tags", "tags"), ("tag", "tags")),
    tag_separator=",;",
)  # fmt: skip
# A reader's language, in a file of any format: the first of these columns with a value.
LANGUAGE_COLUMNS = (("language", "lang"), ("lang", "lang"), ("locale", "lang"))


@dataclass(frozen=True, slots=True)
class Layout:
    """What each column of one file holds: made once from its header, used for every row."""

    format: str  # the name the summary shows
    names: tuple[str, ...]  # the header, cleaned
    fields: Mapping[str, tuple[int, ...]]  # field -> its columns; the first non-empty wins
    attributes: tuple[tuple[int, str], ...]  # (column, attribute name)
    json_columns: tuple[int, ...] = ()
    status: str | None = None  # the format's status of every row
    forced: str | None = None  # --status
    words: Mapping[str, str | None] = field(default_factory=lambda: STATUS_WORDS)
    tag_separator: str = ","
    gone_domain: str = ""
    leaving: tuple[tuple[int, str], ...] = ()  # (column, status): LEFT_COLUMNS in the file
    guessed: bool = False  # a generic CSV's status column, taken by a name such as state
    # A generic status column (STATUS_COLUMNS) in a tool's export whose own status is elsewhere
    # (Mailchimp's is the file's kind): read as a generic CSV's, the further from mail stands.
    also_status: tuple[int, ...] = ()

    @property
    def width(self) -> int:
        return len(self.names)

    @property
    def email(self) -> int:
        return self.fields["email"][0]


def plan(
    path: Path, header: Sequence[str], mapping: Sequence[str] = (), forced: str | None = None
) -> Layout:
    """The layout of a file with this header: a known tool's export, else a generic CSV (an
    email column, a name or first and last name, attributes), and ``mapping`` (COLUMN=FIELD)
    over either. Raises FileInputError for a header without an email column, InputError for a
    bad ``--map`` or ``--status``: before anything is written."""
    names = [clean(live(h)).strip() for h in header]
    lowered = [n.lower() for n in names]
    if "" in names:
        raise FileInputError(path, f"column {names.index('') + 1} of the header has no name", 1)
    duplicates = sorted({n for n in lowered if lowered.count(n) > 1})
    if duplicates:
        raise FileInputError(path, f"column {duplicates[0]!r} appears twice in the header", 1)
    if forced is not None and forced not in FORCED:
        raise InputError(f"invalid --status {forced!r}: choose from {', '.join(FORCED)}")
    mapped = _mapping(path, mapping, names, lowered)
    found = next((f for f in FORMATS if f.recognises(set(lowered))), GENERIC)
    fields: dict[str, list[int]] = {}
    for index, target in mapped.items():
        if target in FIELDS:
            fields[target] = [index]
    given = set(fields)
    position = {n: i for i, n in enumerate(lowered)}
    dated = ((column, "status_at") for column, _ in LEFT_COLUMNS)
    for column, name in (*found.columns, *LANGUAGE_COLUMNS, *dated):
        at = position.get(column)
        if at is None or at in mapped or name in given or at in fields.get(name, []):
            continue
        fields.setdefault(name, []).append(at)
    if found is GENERIC and "name" in fields:  # a name column: first and last stay attributes
        for part in {"first_name", "last_name"} - given:
            fields.pop(part, None)
    taken = {i for columns in fields.values() for i in columns}
    free = 0 not in mapped and 0 not in taken and lowered[0] not in found.any_of
    if found.email_first and "email" not in fields and free:
        fields["email"] = [0]  # Mailchimp's address comes first, under any label
    _check_email(path, fields.get("email", []), names)
    used = {i for columns in fields.values() for i in columns}
    also = () if found is GENERIC else tuple(
        at for c in STATUS_COLUMNS if (at := position.get(c)) is not None
        and at not in used and at not in mapped)  # fmt: skip
    used.update(also)
    json_columns = tuple(position[c] for c in sorted(found.json_columns) if c in position)
    used.update(json_columns, (i for i, target in mapped.items() if target == IGNORE))
    attributes = [(i, mapped[i].removeprefix(ATTRIBUTE)) if i in mapped else (i, names[i])
                  for i in range(len(names)) if i not in used]  # fmt: skip
    if found.prefixed:
        attributes = [(i, n[len(ATTRIBUTE) :] if n.lower().startswith(ATTRIBUTE) else n)
                      for i, n in attributes]  # fmt: skip
    return Layout(
        found.name + (" with --map" if mapping else ""), tuple(names),
        {k: tuple(v) for k, v in fields.items()}, tuple(attributes), json_columns,
        found.status, forced, STATUS_WORDS if "status" in given else found.words,
        found.tag_separator, found.gone_domain,
        tuple((position[c], status) for c, status in LEFT_COLUMNS if c in position),
        found is GENERIC and "status" not in given
        and any(lowered[i] != "status" for i in fields.get("status", ())), also,
    )  # fmt: skip


def _check_email(path: Path, columns: list[int], names: list[str]) -> None:
    if not columns:
        raise FileInputError(
            path,
            f"no email column in the header {names}: expected one named email, e-mail or"
            ' Email Address, or name it with --map "COLUMN=email"',
            1,
        )
    if len(columns) > 1:
        shown = ", ".join(repr(names[i]) for i in columns)
        raise FileInputError(path, f"more than one email column in the header ({shown})", 1)


def _mapping(
    path: Path, entries: Sequence[str], names: list[str], lowered: list[str]
) -> dict[int, str]:
    """``--map COLUMN=FIELD`` entries as {column index: field, attribute:NAME or ignore}."""
    result: dict[int, str] = {}
    for entry in entries:
        column, sep, target = (clean(part).strip() for part in entry.partition("="))
        if not sep or not column or not target:
            raise InputError(f"invalid --map {entry!r}: expected COLUMN=FIELD")
        if target.lower().startswith(ATTRIBUTE) and target[len(ATTRIBUTE) :].strip():
            target = ATTRIBUTE + target[len(ATTRIBUTE) :].strip()
        elif target.lower() in (*FIELDS, IGNORE):
            target = target.lower()
        else:
            known = ", ".join((*FIELDS, "attribute:NAME", IGNORE))
            raise InputError(f"invalid --map {entry!r}: unknown field {target!r} ({known})")
        if column.lower() not in lowered:
            raise InputError(
                f"invalid --map {entry!r}: {path} has no column {column!r} (its columns: {names})"
            )
        index = lowered.index(column.lower())
        if index in result:
            raise InputError(f"invalid --map {entry!r}: column {column!r} is mapped twice")
        if target in FIELDS and target in result.values():
            raise InputError(f"invalid --map {entry!r}: two columns are mapped to {target}")
        result[index] = target
    return result
