"""What each setting may hold, checked as settings load: a value that does not fit has a reason."""

from __future__ import annotations

import ipaddress
import math
import os
import re
from collections.abc import Callable

from email_validator import EmailNotValidError, validate_email

from mailer.config.postgres_url import problem as postgres_url_problem
from mailer.times import SPAN, known_zone

Check = Callable[[object], str | None]  # None when the value fits, else why not (no value in it)

CONTROLS = re.compile(r"[\x00-\x1f\x7f]")
CONTROLS_BUT_BREAKS = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")
LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
HOST_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")
URL = re.compile(r"(?P<scheme>[A-Za-z]+)://(?P<host>\[[0-9A-Fa-f:.]+\]|[^/:?#\[\]@]*)"
                 r"(?::(?P<port>[0-9]{1,5}))?(?P<path>/[^?#]*)?")  # fmt: skip
URL_UNSAFE = re.compile(r"[\s<>\"'`,\\^{}|\x00-\x1f\x7f]")
SECRET_WORDS = ("password", "secret", "token")
LARGEST = 2**31 - 1
MAX_CONCURRENCY = 1000
MAX_PROCESSES = 16


def is_secret(key: str) -> bool:
    """A key whose value is never shown: its name says password, secret or token, or it is a
    url that may hold one."""
    return key == "database.url" or any(
        word in key.rpartition(".")[2].lower() for word in SECRET_WORDS
    )


def max_processes() -> int:
    """The most [dkim] processes a machine may have: its cores, and never more than 16."""
    return min(os.cpu_count() or 1, MAX_PROCESSES)


def whole(low: int, high: int = LARGEST, why: str = "") -> Check:
    """A whole number from ``low`` to ``high``; ``why`` explains the upper bound."""

    def check(value: object) -> str | None:
        assert isinstance(value, int)
        problem = _range(value, low, high)
        return f"{problem} ({why})" if why and value > high else problem

    return check


def _range(value: float, low: float, high: float, above: bool = False) -> str | None:
    if value < low or (above and value == low):
        if low == 0 and not above:
            return "must not be negative"
        return f"must be more than {_text(low)}" if above else f"must be at least {_text(low)}"
    if value > high:
        return f"must be at most {_text(high)}"
    return None


def number(low: float, high: float = math.inf, *, above: bool = False) -> Check:
    """A finite number from ``low`` (or above it) to ``high``."""

    def check(value: object) -> str | None:
        assert isinstance(value, float)
        return _range(value, low, high, above) if math.isfinite(value) else "must be finite"

    return check


def _text(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)


def one_of(*choices: str) -> Check:
    def check(value: object) -> str | None:
        return (
            None
            if value in choices
            else "must be " + ", ".join(choices[:-1]) + f" or {choices[-1]}"
        )

    return check


def line(value: object) -> str | None:
    """Text on one line: no line breaks or other control characters."""
    return (
        "must not contain line breaks or control characters"
        if CONTROLS.search(str(value))
        else None
    )


def lines(value: object) -> str | None:
    """Text that may run over lines, without other control characters."""
    return "must not contain control characters" if CONTROLS_BUT_BREAKS.search(str(value)) else None


def secret(value: object) -> str | None:
    return "must not contain control characters" if CONTROLS.search(str(value)) else None


def path(value: object) -> str | None:
    if not str(value).strip():
        return "must name a file or folder"
    return line(value)


def dns_name(value: object) -> str | None:
    """A domain name or DKIM selector: dot-separated labels of letters, digits and hyphens."""
    text = str(value)
    if not text:
        return "must not be empty"
    labels = text.split(".")
    if len(text) > 253 or not all(LABEL.fullmatch(label) for label in labels):
        return "must be a DNS name: labels of letters, digits and hyphens (punycode for others)"
    return None


def optional(check: Check) -> Check:
    """``check``, or empty."""
    return lambda value: None if value == "" else check(value)


def host(value: object) -> str | None:
    """A host name or an IP address, or empty."""
    text = str(value)
    if text == "":
        return None
    try:
        ipaddress.ip_address(text.strip("[]"))
        return None
    except ValueError:
        pass
    if len(text) > 253 or not all(HOST_LABEL.fullmatch(part) for part in text.split(".")):
        return "must be a host name or an IP address"
    return None


def _not_an_address(text: str) -> str | None:
    """Why email-validator refuses ``text``, or None."""
    try:
        validate_email(text, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError as error:
        return str(error).rstrip(".")
    return None


def address(value: object) -> str | None:
    """One bare address (as in MAIL FROM), valid for email-validator."""
    if (problem := line(value)) is not None:
        return problem
    if (why := _not_an_address(str(value))) is not None:
        return f"must be a bare address such as bounces@example.org ({why})"
    return None


def mailbox(value: object) -> str | None:
    """One address with an optional display name: ``Name <name@example.org>``."""
    if (problem := line(value)) is not None:
        return problem
    text = str(value).strip()
    name, addr = "", text
    if text.endswith(">") and "<" in text:
        name, _, addr = text[:-1].rpartition("<")
        name = name.strip()
    quoted = (
        len(name) >= 2 and name[0] == name[-1] == '"' and '"' not in name[1:-1].replace('\\"', "")
    )
    if not quoted and any(mark in name for mark in '<>,;:@"'):
        return 'must be one address, as "Name <name@example.org>" (quote a name with , ; : or @)'
    if (why := _not_an_address(addr)) is not None:
        return f'must be one address, as "Name <name@example.org>" ({why})'
    return None


def base_url(value: object) -> str | None:
    """The public http(s) address of `mailer serve`: it goes into headers and every link."""
    text = str(value)
    problem = "must be an http:// or https:// address with a host, like https://news.example.org"
    if URL_UNSAFE.search(text) or not text.isascii():
        return problem + "; no spaces, quotes, commas, <, > or non-ASCII (percent-encode them)"
    found = URL.fullmatch(text)
    if found is None or found["scheme"].lower() not in ("http", "https") or not found["host"]:
        return problem + " (no user, query or fragment)"
    if host(found["host"]) is not None or not 0 < int(found["port"] or 80) < 65536:
        return problem + " (the host or port is not valid)"
    return None


def zone(value: object) -> str | None:
    """An IANA time zone name the machine knows (Europe/Paris, UTC)."""
    assert isinstance(value, str)
    return None if known_zone(value) else "must be a time zone such as Europe/Paris or UTC"


def span(value: object) -> str | None:
    """A length of time: minutes, hours or days (30m, 6h, 2d)."""
    assert isinstance(value, str)
    return None if SPAN.fullmatch(value.strip()) else "must be a duration such as 30m, 6h or 2d"


def postgres_url(value: object) -> str | None:
    """A PostgreSQL connection url with no password in it (libpq reads PGPASSWORD, ~/.pgpass)."""
    text = str(value)
    return secret(text) or postgres_url_problem(text)


def rules() -> dict[str, Check]:
    """Every setting's check, by ``section.key``."""
    return {
        "newsletter.name": line,
        "newsletter.sender": mailbox,
        "newsletter.reply_to": optional(mailbox),
        "newsletter.postal_address": lines,
        "newsletter.base_url": base_url,
        "newsletter.timezone": optional(zone),
        "database.path": path,
        "database.busy_timeout": number(0, 86400),
        "database.url": optional(postgres_url),
        "addresses.check_dns": lambda value: None,
        "smtp.host": host,
        "smtp.port": whole(1, 65535),
        "smtp.security": one_of("starttls", "tls", "none"),
        "smtp.username": line,
        "smtp.password": secret,
        "smtp.timeout": number(0, 86400, above=True),
        "smtp.data_timeout": number(0, 86400, above=True),
        "smtp.concurrency": whole(1, MAX_CONCURRENCY),
        "smtp.rate": number(0),
        "smtp.max_per_connection": whole(1),
        "smtp.envelope_sender": optional(address),
        "smtp.verify_tls": lambda value: None,
        "send.max_attempts": whole(1, 100),
        "send.retry_delay": number(0, 86400),
        "send.max_consecutive_failures": whole(1),
        "send.max_attachment_mb": number(0, 1000),
        "send.lease_seconds": number(1, 3600),
        "images.mode": one_of("hosted", "inline"),
        "dkim.domain": optional(dns_name),
        "dkim.selector": dns_name,
        "dkim.key_file": path,
        "dkim.processes": whole(
            0, max_processes(), "0 is automatic; the most is the CPU cores, 16"
        ),
        "bounces.verp": lambda value: None,
        "bounces.domain": optional(dns_name),
        "bounces.soft_limit": whole(0),
        "bounces.soft_window_days": whole(1, 3650),
        "bounces.imap_password": secret,
        "outbox.path": path,
        "web.confirm_days": whole(1, 3650),
        "schedule.late_after": span,
        "schedule.poll_seconds": number(0.05, 3600),
    }
