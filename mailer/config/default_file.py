"""The commented mailer.toml that `mailer init` writes, and which settings block an SMTP send."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from urllib.parse import urlsplit

from mailer.config.loading import where_set
from mailer.config.settings import SECTIONS, NewsletterSettings, Settings

DOCS: dict[str, dict[str, str]] = {
    "newsletter": {
        "name": "Name shown to readers in the footer and the List-Id.",
        "sender": "From header: one address, with an optional display name.",
        "reply_to": "Optional Reply-To: one address (display name allowed); empty means none.",
        "postal_address": "Postal address printed in every footer (the law asks for one).",
        "base_url": "Must be the public https address readers reach `mailer serve` at (unsubscribe"
        " and archive links); plain http is refused for SMTP sends unless it is loopback.",
        "timezone": "Time zone of the times given to `send --at` (Europe/Paris); empty means"
        " the machine's.",
    },
    "database": {
        "path": "SQLite database, relative to the workspace.",
        "url": "A PostgreSQL database instead (postgresql://user@host/db); no password here.",
        "busy_timeout": "Seconds to wait for a database locked by another process (0-86400).",
    },
    "addresses": {"check_dns": "Check that address domains accept mail (DNS MX lookups)."},
    "smtp": {
        "host": "SMTP relay host; empty sends to the outbox Maildir instead.",
        "port": "587 for starttls, 465 for tls, 25 for none (1-65535).",
        "security": "starttls, tls or none.",
        "username": "Login name; empty means no authentication.",
        "password": "Better set MAILER_SMTP_PASSWORD in the environment than write it here.",
        "timeout": "Seconds to wait for the server on each command (more than 0, up to 86400).",
        "data_timeout": "Seconds to wait for the reply to a message once sent (RFC 5321: 600).",
        "concurrency": "Persistent connections used in parallel (1-1000).",
        "rate": "Messages per second across all connections; 0 means unlimited.",
        "max_per_connection": "Reconnect after this many messages on one connection (1 or more).",
        "envelope_sender": "Return path (MAIL FROM); empty means the From address.",
        "verify_tls": "Verify the server's TLS certificate. Turn off only for a test relay.",
    },
    "send": {
        "max_attempts": "Tries per reader on temporary (4xx) failures, then deferred (1-100).",
        "retry_delay": "Seconds before the first retry of a deferred message, doubled (0-86400).",
        "max_consecutive_failures": "Pause the campaign after this many failures in a row (1+).",
        "max_attachment_mb": "Refuse a report whose attachments add up to more megabytes (0-1000).",
        "lease_seconds": "A worker's claim on a batch; a dead worker's is taken after it (1-3600).",
    },
    "images": {
        "mode": "hosted (served by `mailer serve` at BASE_URL/media/) or inline (in each message).",
    },
    "dkim": {
        "domain": "Signing domain (d=); empty turns DKIM signing off.",
        "selector": "Selector (s=): the key is published at SELECTOR._domainkey.DOMAIN.",
        "key_file": "PEM private key (RSA 2048 or Ed25519), relative to the workspace.",
        "processes": "Processes that build and sign, up to the cores and 16; 0: cores - 1, 1-4.",
    },
    "bounces": {
        "verp": "Envelope sender bounces+TOKEN@DOMAIN, so each bounce names its reader.",
        "domain": "Domain of the VERP address; empty means the From domain.",
        "soft_limit": "Soft bounces within the window that make a reader bounced (0 or more).",
        "soft_window_days": "Days over which soft bounces are counted (1-3650).",
        "imap_password": "Better set MAILER_BOUNCES_IMAP_PASSWORD than write it here.",
    },
    "outbox": {"path": "Maildir that receives messages when no SMTP host is set."},
    "web": {"confirm_days": "Days a confirmation link stays good (1-3650)."},
    "schedule": {
        "late_after": "A campaign due longer ago than this (30m, 6h, 2d) when `mailer serve`"
        " comes back waits for `mailer campaigns resume` instead of starting by itself.",
        "poll_seconds": "How often `mailer serve` looks for campaigns that are due (0.05-3600).",
    },
}


def render_default_file() -> str:
    """Return a commented mailer.toml that lists every key with its default."""
    defaults = Settings(workspace=Path("."))
    out = [
        "# mailer settings. Every key is shown with its default; delete what you do not change.",
        "# MAILER_<SECTION>_<KEY> environment variables (MAILER_SMTP_HOST, ...) win over it.",
    ]
    for section in SECTIONS:
        group = getattr(defaults, section)
        out += ["", f"[{section}]"]
        for item in fields(group):
            out.append(f"# {DOCS[section][item.name]}")
            out.append(f"{item.name} = {_toml_value(getattr(group, item.name))}")
    return "\n".join(out) + "\n"


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


PLACEHOLDERS = ("sender", "postal_address", "base_url")


def unfit_for_readers(settings: Settings, environ: Mapping[str, str] | None = None) -> str | None:
    """What keeps [newsletter] from reaching real readers, on one line: each setting that still
    holds `mailer init`'s placeholder, or a base_url over plain http on a host that is not
    loopback, with where to change it. None when there is nothing."""
    defaults, problems = NewsletterSettings(), []
    for key in PLACEHOLDERS:
        value = getattr(settings.newsletter, key)
        if value.strip() == getattr(defaults, key):
            problem = "still `mailer init`'s placeholder"
        elif key == "base_url" and _public_http(value):
            problem = f"{value!r}, plain http on a host that is not loopback; use https"
        else:
            continue
        where = where_set(settings.workspace, "newsletter", key, environ)
        problems.append(f"newsletter.{key} is {problem} ({where})")
    return "; ".join(problems) or None


def _public_http(url: str) -> bool:
    parts = urlsplit(url.strip())
    if parts.scheme.lower() != "http":
        return False
    host = (parts.hostname or "").rstrip(".")
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True
