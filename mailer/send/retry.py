"""What a server's reply means for a delivery: sent, retried later, failed, or bounced."""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailer.models import Reply
from mailer.send.types import Delivery, Result, Stop, StopReason

# RFC 3463 codes for a bad destination mailbox; 5.1.7 and 5.1.8 are about the sender instead.
NO_SUCH_USER = re.compile(r"\b5\.1\.(?:1|2|3|6|10)\b")


@dataclass(frozen=True, slots=True)
class Judgement:
    status: str  # sent | deferred | failed
    bounced: bool = False  # failed because the mailbox does not exist


def judge(reply: Reply) -> Judgement:
    """2xx sent; 5xx failed (5.1.x about the recipient: bounced); everything else deferred,
    a refused sender included: that is not the reader's fault."""
    if reply.accepted:
        return Judgement("sent")
    if reply.permanent and reply.stage != "mail":
        bounced = bool(NO_SUCH_USER.search(reply.text)) and "sender" not in reply.text.lower()
        return Judgement("failed", bounced)
    return Judgement("deferred")


# RFC 3207, RFC 4954: a session that must start TLS, or log in, before it may send anything.
# A 530 (or such words in a refusal of MAIL) is about the session, not a reader: no retry helps.
MUST_STARTTLS = re.compile(r"starttls|\btls\b|encrypt", re.IGNORECASE)
SESSION_WORDS = re.compile(r"must issue a starttls|authentication required|not authenticated",
                        re.IGNORECASE)  # fmt: skip


def session_refusal(reply: Reply) -> str | None:
    """What a refusal of MAIL or RCPT asks of the session itself before it may send anything:
    "starttls" or "login"; None when it is about this message or reader."""
    if reply.stage not in ("mail", "rcpt") or not reply.permanent:
        return None
    if reply.code != 530 and not (reply.stage == "mail" and SESSION_WORDS.search(reply.text)):
        return None
    return "starttls" if MUST_STARTTLS.search(reply.text) else "login"


UNANSWERED = "unanswered"  # the stage of a reply lost once the message had gone whole


def unanswered(reason: str) -> Reply:
    """What a message is recorded with when its reply was lost once it had gone whole: it may
    have arrived, so it is deferred, and not tried again by the same run."""
    return Reply(451, f"4.4.2 no reply once the message was sent ({reason}): it may have"
                 " arrived, so it is not sent again in this run", UNANSWERED)  # fmt: skip


def backoff(retry_delay: float, attempts: int) -> float:
    """Seconds before the next attempt: ``retry_delay``, doubled after each attempt."""
    return float(retry_delay * 2 ** (attempts - 1))


def may_retry(status: str, attempts: int, max_attempts: int) -> bool:
    return status == "deferred" and attempts < max_attempts


def left(delivery: Delivery) -> Result:
    """What a reader who is no longer subscribed when their turn comes gets: skipped."""
    return Result(delivery.reader.id, "skipped", delivery.attempts, text="no longer subscribed")


CONNECT = "connect"  # the stage of a failure to reach the server at all


def not_connected(reason: str) -> Reply:
    """What a delivery is recorded with when no connection to the server could be made."""
    return Reply(421, f"cannot connect: {reason}", CONNECT)


class FailuresInARow:
    """Counts failures in a row (a refusal, a connection lost or never made); at ``limit``
    the run pauses, as UNREACHABLE when every one of them was a connection that could not be
    made: the relay is down, and `mailer serve` tries again later instead of leaving it."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.success()

    def success(self) -> None:
        self.count, self.unreachable, self.connecting = 0, True, False

    def failure(self, reply: Reply) -> Stop | None:
        self.count += 1
        # A reply lost once the message went whole may be the relay going down (one awaited
        # as it died), but a relay that swallows every reply is there: at least one failure
        # must be a connection lost or never made.
        self.unreachable = self.unreachable and reply.stage in (CONNECT, UNANSWERED)
        self.connecting = self.connecting or reply.stage == CONNECT
        if self.count < self.limit:
            return None
        down = self.unreachable and self.connecting
        reason = StopReason.UNREACHABLE if down else StopReason.FAILURES
        return Stop(reason, f"{self.count} failures in a row")
