"""What a server's reply means for a delivery: sent, retried later, failed, or bounced."""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailer.models import Reply

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


def backoff(retry_delay: float, attempts: int) -> float:
    """Seconds before the next attempt: ``retry_delay``, doubled after each attempt."""
    return float(retry_delay * 2 ** (attempts - 1))


def may_retry(status: str, attempts: int, max_attempts: int) -> bool:
    return status == "deferred" and attempts < max_attempts
