"""Read one incoming message: a bounce (VERP, DSN, flufl.bounce), a complaint (ARF), a mailto."""

from __future__ import annotations

import re
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import Message
from email.parser import HeaderParser
from email.utils import getaddresses, parseaddr

from flufl.bounce import all_failures

from mailer.bounces.complaints import Complaint, read_feedback
from mailer.models import heard
from mailer.tokens import Signer, parse_verp

# Where MTAs put the envelope recipient of the bounce (ours: bounces+TOKEN@domain), best first.
ENVELOPE_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To", "Cc")
REPORTS = ("message/delivery-status", "message/global-delivery-status")
UNSUBSCRIBE = re.compile(r"\+unsubscribe-([a-z0-9][a-z0-9_-]{0,62})@", re.IGNORECASE)
STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
SMTP_CODE = re.compile(r"(?:^|;)\s*([245]\d\d)(?=[\s:-]|$)")
MESSAGE_ID = re.compile(r"^Message-ID:\s*(<[^>\s]+>)", re.IGNORECASE | re.MULTILINE)
DAEMONS = ("mailer-daemon", "postmaster", "mail-daemon")


@dataclass(frozen=True, slots=True)
class Failure:
    """One recipient a bounce reports: hard (permanent) or soft (temporary)."""

    addresses: tuple[str, ...]  # original recipient first, then the final one; lower-case
    hard: bool
    final: bool = True  # False for a delay warning: the sending MTA is still trying
    status: str = ""  # enhanced status code, e.g. 5.1.1
    diagnostic: str = ""

    @property
    def code(self) -> int | None:
        """The SMTP reply code the remote server gave, when the report names one."""
        found = SMTP_CODE.search(self.diagnostic)
        return int(found.group(1)) if found else None

    @property
    def detail(self) -> str:
        """Status and diagnostic as the events keep them (a report's control characters go)."""
        return heard(f"{self.status} {self.diagnostic}").strip()[:500]


@dataclass(frozen=True, slots=True)
class Reading:
    """What one message is: kind 'bounce', 'complaint', 'unsubscribe' or 'other' (with the
    reason)."""

    kind: str
    failures: tuple[Failure, ...] = ()
    verp: tuple[int, int] | None = None  # (subscriber id, campaign id) from our return path
    message_id: str = ""
    original_message_id: str = ""  # of the message that bounced, when the bounce quotes it
    list_slug: str = ""
    sender: str = ""
    reason: str = ""
    complaint: Complaint | None = None  # an ARF report's type and the recipients it names


def read_message(raw: bytes, signer: Signer) -> Reading:
    """Classify one raw message; never raises for a malformed message (it is 'other')."""
    msg = message_from_bytes(raw, policy=policy.compat32)
    own_id = _clean_id(msg.get("Message-ID", ""))
    try:
        verp = _verp(msg, signer)
        complaint = read_feedback(msg, _original_headers(msg))
        if complaint is not None:  # before flufl.bounce, which could take it for a bounce
            return _complaint(msg, complaint, verp, signer, own_id)
        report = [p for p in msg.walk() if p.get_content_type() in REPORTS]
        failures = _dsn_failures(report) if report else _flufl_failures(msg)
        original = _original_message_id(msg)
    except Exception as error:  # a malformed message must not stop the others
        return Reading("other", message_id=own_id, reason=heard(f"cannot parse: {error}"))
    if failures:
        return Reading("bounce", failures, verp, own_id, original)
    slug = _unsubscribe_slug(msg)
    if slug and not report:
        sender = parseaddr(heard(str(msg.get("From", "")), keep_apart=True))[1].strip().lower()
        if not sender or sender.partition("@")[0] in DAEMONS:
            return Reading("other", message_id=own_id, reason="unsubscribe request without sender")
        return Reading("unsubscribe", message_id=own_id, list_slug=slug.lower(), sender=sender)
    if report:
        reason = "delivery report without failures"
    elif verp:
        reason = "no failure found in mail to a VERP address (an auto-reply?)"
    else:
        reason = "neither a bounce nor an unsubscribe request"
    return Reading("other", verp=verp, message_id=own_id, reason=reason)


def _complaint(
    msg: Message, complaint: Complaint, verp: tuple[int, int] | None, signer: Signer, own_id: str
) -> Reading:
    """An ARF report: a complaint (abuse, fraud) names its reader by our return path (the
    quoted message's, or the report's Original-Mail-From), else by the addresses it gives."""
    if not complaint.counts:
        reason = f"feedback report ({complaint.feedback_type}): not a complaint"
        return Reading("other", message_id=own_id, reason=heard(reason)[:200])
    verp = verp or parse_verp(signer, complaint.mail_from)
    original = _original_message_id(msg)
    return Reading("complaint", (), verp, own_id, original, complaint=complaint)


def _addresses(msg: Message, names: tuple[str, ...]) -> list[str]:
    values: list[str] = []
    for name in names:
        values += [heard(str(v), keep_apart=True) for v in msg.get_all(name, [])]
    return [address for _, address in getaddresses(values) if address]


def _verp(msg: Message, signer: Signer) -> tuple[int, int] | None:
    """Our signed return path: on the bounce's envelope headers, else on the returned message."""
    candidates = _addresses(msg, ENVELOPE_HEADERS)
    for part in msg.walk():
        headers = _returned_headers(part)
        if headers is not None:
            candidates += _addresses(headers, ("Return-Path",))
    for address in candidates:
        found = parse_verp(signer, address)
        if found:
            return found
    return None


def _unsubscribe_slug(msg: Message) -> str:
    for address in _addresses(msg, ENVELOPE_HEADERS):
        found = UNSUBSCRIBE.search(address)
        if found:
            return found.group(1)
    return ""


def _dsn_failures(reports: list[Message]) -> tuple[Failure, ...]:
    """Per-recipient fields of RFC 3464 reports: Action failed/delayed, Status, Diagnostic-Code."""
    failures: list[Failure] = []
    for report in reports:
        for block in _blocks(report):
            action = str(block.get("Action", "")).strip().lower()
            diagnostic = " ".join(str(block.get("Diagnostic-Code", "")).split())
            found = STATUS.search(str(block.get("Status", ""))) or STATUS.search(diagnostic)
            status = found.group(0) if found else ""
            if action not in ("failed", "delayed") and not (not action and status[:1] == "5"):
                continue
            addresses = tuple(
                dict.fromkeys(
                    a
                    for a in (
                        _typed_address(block.get("Original-Recipient")),
                        _typed_address(block.get("Final-Recipient")),
                    )
                    if a
                )
            )
            if not addresses:
                continue
            final = action != "delayed"
            severity = status[:1] or ("5" if final else "4")
            failures.append(
                Failure(addresses, final and severity == "5", final, status, diagnostic)
            )
    return tuple(failures)


def _blocks(report: Message) -> list[Message]:
    payload = report.get_payload()
    if report.get_content_type() == "message/delivery-status" and isinstance(payload, list):
        return [block for block in payload if isinstance(block, Message)]
    # message/global-delivery-status (RFC 6533) is not split by the parser: split it here,
    # from its bytes (its UTF-8 addresses would come back from as_string() as U+FFFD).
    raw = report.as_bytes().decode("utf-8", "replace")
    text = raw.replace("\r\n", "\n").split("\n\n", 1)[-1]
    return [HeaderParser().parsestr(b) for b in re.split(r"\n[ \t]*\n", text) if b.strip()]


def _typed_address(value: object) -> str:
    """``rfc822; reader@example.org`` -> ``reader@example.org``."""
    text = heard(str(value or ""), keep_apart=True).strip()
    kind, sep, address = text.partition(";")
    if not sep:
        address = kind
    elif kind.strip().lower() not in ("rfc822", "utf-8"):
        return ""
    address = parseaddr(address.strip())[1] or address.strip().strip("<>")
    return address.lower() if "@" in address else ""


def _flufl_failures(msg: Message) -> tuple[Failure, ...]:
    """Non-RFC 3464 bounces (qmail, Yahoo, Exim's text, ...): flufl.bounce's detectors."""
    temporary, permanent = all_failures(msg)
    text = _body_text(msg)
    failures = []
    for raw, hard in [(a, True) for a in sorted(permanent)] + [
        (a, False) for a in sorted(temporary)
    ]:
        address = heard(raw.decode("utf-8", "replace"), keep_apart=True).strip().lower()
        if "@" not in address or (not hard and raw in permanent):
            continue
        status, diagnostic = _text_reason(text, address)
        failures.append(Failure((address,), hard, hard, status, diagnostic))
    return tuple(failures)


def _body_text(msg: Message) -> str:
    texts = []
    for part in msg.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                charset = part.get_content_charset() or "utf-8"
                texts.append(payload.decode(charset if _known(charset) else "utf-8", "replace"))
    return "\n".join(texts)


def _known(charset: str) -> bool:
    try:
        "".encode(charset)
    except LookupError:
        return False
    return True


def _text_reason(text: str, address: str) -> tuple[str, str]:
    """The first status code or SMTP reply after the address in a plain-text bounce."""
    start = text.lower().find(address)
    after = text[start:] if start >= 0 else text
    for line in after.splitlines()[:12]:
        if line.strip().strip("<>:").lower() == address:
            continue
        status = STATUS.search(line)
        if status or re.search(r"\b[45]\d\d\b", line):
            return (status.group(0) if status else ""), " ".join(line.split())[:300]
    return "", ""


def _returned_headers(part: Message) -> Message | None:
    """The headers of the returned message: a message/rfc822 or text/rfc822-headers part."""
    kind = part.get_content_type()
    if kind == "message/rfc822":
        payload = part.get_payload()
        if isinstance(payload, list) and payload and isinstance(payload[0], Message):
            return payload[0]
    if kind == "text/rfc822-headers":
        body = part.get_payload(decode=True)
        if isinstance(body, bytes):
            return HeaderParser().parsestr(body.decode("utf-8", "replace"))
    return None


def _original_headers(msg: Message) -> Message | None:
    return next((h for h in map(_returned_headers, msg.walk()) if h is not None), None)


def _original_message_id(msg: Message) -> str:
    for part in msg.walk():
        headers = _returned_headers(part)
        if headers is not None and headers.get("Message-ID"):
            return _clean_id(str(headers["Message-ID"]))
    found = MESSAGE_ID.search(_body_text(msg))  # bounces that quote the message as text
    return heard(found.group(1), keep_apart=True) if found else ""


def _clean_id(value: str) -> str:
    text = "".join(heard(str(value), keep_apart=True).split())
    return text if not text or text.startswith("<") else f"<{text}>"
