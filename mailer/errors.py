"""The one base error, MailerError, and subclasses that carry what went wrong and where."""

from __future__ import annotations

from pathlib import Path


class MailerError(Exception):
    """A problem the user can fix; the CLI prints ``str(error)`` as one line and exits 1."""


class ConfigError(MailerError):
    """A bad setting in mailer.toml or a MAILER_* environment variable."""

    def __init__(self, source: str, key: str, reason: str, line: int | None = None) -> None:
        self.source, self.key, self.reason, self.line = source, key, reason, line
        where = f"{source}:{line}" if line else source
        super().__init__(f"{where}: {key}: {reason}" if key else f"{where}: {reason}")


class NotFoundError(MailerError):
    """A named thing (list, subscriber, campaign) does not exist."""

    def __init__(self, kind: str, name: str, hint: str = "") -> None:
        self.kind, self.name = kind, name
        super().__init__(f"no {kind} {name!r}" + (f" ({hint})" if hint else ""))


class AddressError(MailerError):
    """An email address that does not validate."""

    def __init__(self, address: str, reason: str) -> None:
        self.address, self.reason = address, reason
        super().__init__(f"invalid address {address!r}: {reason}")


class InputError(MailerError):
    """Bad user input that is not an address: an option value, a slug, an attribute."""


class CampaignLocked(InputError):
    """Another process is sending this campaign: a caller may skip it and try again later."""

    def __init__(self, campaign_id: int) -> None:
        self.campaign_id = campaign_id
        super().__init__(f"campaign {campaign_id} is being sent by another mailer process")


class UnfitForReaders(InputError):
    """This host's settings cannot send to readers (plain http links over SMTP): another host,
    or this one mended, may."""


class FileInputError(MailerError):
    """A file that cannot be read or parsed, with the line where it went wrong."""

    def __init__(self, path: Path | str, reason: str, line: int | None = None) -> None:
        self.path, self.reason, self.line = Path(path), reason, line
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {reason}")


class StoreError(MailerError):
    """The database cannot be opened, is locked, or refuses a write."""

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path, self.reason = path, reason  # a file, or a url without its password
        super().__init__(f"database {path}: {reason}")


class StoreUnavailable(StoreError):
    """The database cannot be reached, or is locked, for now: the same work may succeed later."""


class TransportError(MailerError):
    """The mail server cannot be reached or refuses the session (not one recipient)."""

    def __init__(self, where: str, reason: str) -> None:
        self.where, self.reason = where, reason
        super().__init__(f"{where}: {reason}")


class ConnectionLost(TransportError):
    """An open connection dropped mid-message; the message is retried on a new one."""

    whole = False  # the message had gone whole: see ReplyLost


class ReplyLost(ConnectionLost):
    """The connection dropped, or the server stayed silent, after the whole message had been
    sent: it may have arrived, so it is not sent again in this run."""

    whole = True


class WorkerError(MailerError):
    """A message-building process failed: the campaign pauses, its readers stay queued."""


class DiskFullError(MailerError):
    """No space left where mailer writes (the database, the outbox, an export): what was
    written stays consistent, and the same command finishes the work once there is space."""

    def __init__(self, where: str, then: str = "") -> None:
        self.where, self.then = where, then
        super().__init__(f"disk full: {where}; free space, then {then or 'run it again'}")
