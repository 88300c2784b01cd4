"""Spam complaints: ARF feedback reports (RFC 5965) read, and the delivery their quote names."""

from __future__ import annotations

from dataclasses import dataclass
from email.message import Message
from email.parser import HeaderParser
from email.utils import getaddresses, parseaddr

from mailer.db.database import Connection
from mailer.models import heard

FEEDBACK = "message/feedback-report"
# The reader (or their mailbox provider, for them) reported the message as spam (abuse) or as
# phishing (fraud): either way they must not be mailed again. A virus report is a scanner's
# verdict on the message, not the reader's wish; not-spam, other, auth-failure (DMARC/DKIM
# failure reports about mail claiming our domain) and unknown types ask nothing of us.
COMPLAINTS = frozenset({"abuse", "fraud"})
# Where a report names the reader who received the message (Removal-Recipient: an early draft's).
RECIPIENTS = ("Original-Rcpt-To", "Removal-Recipient")


@dataclass(frozen=True, slots=True)
class Complaint:
    """What one feedback report says: its type, the recipients it names, the original's
    envelope sender (our VERP return path, when we used one) and who reported it."""

    feedback_type: str
    addresses: tuple[str, ...] = ()  # lower-case, the report's own fields first
    mail_from: str = ""
    reporter: str = ""

    @property
    def counts(self) -> bool:
        """A complaint that blocks the reader, not some other kind of feedback."""
        return self.feedback_type in COMPLAINTS

    @property
    def detail(self) -> str:
        """The event's detail: the type and who reported it (never the reader's address)."""
        by = f" from {self.reporter}" if self.reporter else ""
        return heard(f"{self.feedback_type} report{by}")[:300]


def read_feedback(msg: Message, original: Message | None) -> Complaint | None:
    """The feedback report of ``msg``, if it holds one; ``original``: the quoted message's
    headers (its To names the reader when the report's fields do not)."""
    part = next((p for p in msg.walk() if p.get_content_type() == FEEDBACK), None)
    if part is None:
        return None
    fields = _fields(part)
    kind = heard(str(fields.get("Feedback-Type", "")), keep_apart=True).strip().lower()
    named = _addresses(fields, RECIPIENTS)
    if original is not None:
        named += _addresses(original, ("To",))
    mta = str(fields.get("Reporting-MTA", ""))  # "dns; mx.example.net"
    reporter = mta.partition(";")[2].strip() or str(fields.get("User-Agent", ""))
    return Complaint(
        kind or "no Feedback-Type",
        tuple(dict.fromkeys(named)),
        _address(str(fields.get("Original-Mail-From", ""))),
        " ".join(heard(reporter).split())[:100],
    )


def _fields(part: Message) -> Message:
    """The report's fields: parsed as a message's headers, or from its text."""
    payload = part.get_payload()
    if isinstance(payload, list) and payload and isinstance(payload[0], Message):
        return payload[0]
    body = part.get_payload(decode=True)
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(payload)
    return HeaderParser().parsestr(text)


def _addresses(headers: Message, names: tuple[str, ...]) -> list[str]:
    values = [str(v) for name in names for v in headers.get_all(name, [])]
    found = (_address(address) for _, address in getaddresses(values))
    return [address for address in found if "@" in address]


def _address(value: str) -> str:
    text = heard(value, keep_apart=True).strip()
    return (parseaddr(text)[1] or text.strip("<>")).strip().lower()


def sent_as(db: Connection, message_id: str) -> tuple[int, int] | None:
    """(subscriber id, campaign id) of the delivery that carried ``message_id``. mailer makes
    one per reader, ``<KEY.READER.UNIQUE@domain>``: the reader's id narrows the search."""
    bare = message_id.strip("<>")
    reader = bare.rpartition("@")[0].rsplit(".", 2)
    number = reader[1] if len(reader) == 3 else ""
    if not (number.isascii() and number.isdigit() and len(number) < 19):
        return None
    row = db.execute(
        "SELECT subscriber_id, campaign_id FROM deliveries"
        " WHERE subscriber_id = ? AND message_id IN (?, ?)",
        (int(number), f"<{bare}>", bare),
    ).fetchone()
    return (int(row[0]), int(row[1])) if row else None
