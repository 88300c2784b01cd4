"""The settings records: every section's keys with their defaults, and the resolved Settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class NewsletterSettings:
    """[newsletter]: who sends, and where readers reach the web side."""

    name: str = "The Example Bulletin"
    sender: str = "The Example Bulletin <bulletin@example.org>"
    reply_to: str = ""
    postal_address: str = "Example Bulletin, 1 Example Street, 1000 Example City"
    base_url: str = "http://127.0.0.1:8000"
    timezone: str = ""  # an IANA zone (Europe/Paris) for times typed with --at; "" the machine's


@dataclass(frozen=True)
class DatabaseSettings:
    """[database]: where the SQLite file lives, relative to the workspace, or a PostgreSQL url."""

    path: str = "subscribers/mailer.db"
    url: str = ""  # postgresql://user@host/db: every table there instead (password: PGPASSWORD)
    busy_timeout: float = 5.0


@dataclass(frozen=True)
class AddressSettings:
    """[addresses]: validation of addresses."""

    check_dns: bool = False


@dataclass(frozen=True)
class SmtpSettings:
    """[smtp]: the relay; with no host, mail goes to the outbox Maildir instead."""

    host: str = ""
    port: int = 587
    security: str = "starttls"
    username: str = ""
    password: str = field(default="", repr=False)
    timeout: float = 30.0
    data_timeout: float = 600.0  # for the reply to a message's end: RFC 5321 4.5.3.2.6
    concurrency: int = 8
    rate: float = 0.0
    max_per_connection: int = 1000
    envelope_sender: str = ""
    verify_tls: bool = True


@dataclass(frozen=True)
class SendSettings:
    """[send]: retries, the circuit breaker of the send pipeline, the attachments' limit."""

    max_attempts: int = 4
    retry_delay: float = 30.0
    max_consecutive_failures: int = 50
    max_attachment_mb: float = 10.0
    lease_seconds: float = 60.0  # a worker's claim on its batch: taken again once it runs out


@dataclass(frozen=True)
class ImageSettings:
    """[images]: how a report's own images reach readers."""

    mode: str = "hosted"


@dataclass(frozen=True)
class DkimSettings:
    """[dkim]: sign every message; empty domain means no signing."""

    domain: str = ""
    selector: str = "mailer"
    key_file: str = "dkim/private.pem"
    processes: int = 0


@dataclass(frozen=True)
class BounceSettings:
    """[bounces]: VERP return paths and how bounces change a subscriber's status."""

    verp: bool = False
    domain: str = ""
    soft_limit: int = 3
    soft_window_days: int = 30
    imap_password: str = field(default="", repr=False)


@dataclass(frozen=True)
class OutboxSettings:
    """[outbox]: the local Maildir used when no SMTP host is configured."""

    path: str = "outbox"


@dataclass(frozen=True)
class WebSettings:
    """[web]: the readers' side served by `mailer serve`."""

    confirm_days: int = 7


@dataclass(frozen=True)
class ScheduleSettings:
    """[schedule]: the scheduler of `mailer serve`."""

    late_after: str = "6h"
    poll_seconds: float = 1.0


@dataclass(frozen=True)
class Settings:
    """Every setting of a workspace, resolved."""

    workspace: Path
    newsletter: NewsletterSettings = NewsletterSettings()
    database: DatabaseSettings = DatabaseSettings()
    addresses: AddressSettings = AddressSettings()
    smtp: SmtpSettings = SmtpSettings()
    send: SendSettings = SendSettings()
    images: ImageSettings = ImageSettings()
    dkim: DkimSettings = DkimSettings()
    bounces: BounceSettings = BounceSettings()
    outbox: OutboxSettings = OutboxSettings()
    web: WebSettings = WebSettings()
    schedule: ScheduleSettings = ScheduleSettings()

    @property
    def database_path(self) -> Path:
        return self.workspace / self.database.path

    @property
    def outbox_path(self) -> Path:
        return self.workspace / self.outbox.path

    @property
    def templates_dir(self) -> Path:
        return self.workspace / "templates"

    @property
    def media_dir(self) -> Path:
        """Where hosted images are kept, for `mailer serve` to answer at /media/NAME."""
        return self.workspace / "media"


SECTIONS = (
    "newsletter", "database", "addresses", "smtp", "send", "images", "dkim", "bounces", "outbox",
    "web", "schedule",
)  # fmt: skip
