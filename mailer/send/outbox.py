"""The outbox transport: each message written into a local Maildir, as an MTA would deliver it."""

from __future__ import annotations

import errno
import os
import socket
import time
from pathlib import Path

from mailer.compose.mime import ascii_address
from mailer.errors import DiskFullError, MailerError, TransportError
from mailer.models import Reply
from mailer.send.types import Message


class OutboxConnection:
    """Writes each message into a Maildir (tmp/ then new/), as an MTA's local delivery would;
    files are the reader's mail, so only their owner may read them (0600)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.host = socket.gethostname().replace("/", "_").replace(":", "_")
        self.count = 0

    async def send(self, sender: str, recipient: str, message: Message, smtputf8: bool) -> Reply:
        self.count += 1
        name = f"{time.time_ns()}.P{os.getpid()}Q{id(self):x}_{self.count}.{self.host}"
        temporary = self.root / "tmp" / name
        try:
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as handle:
                if not smtputf8:  # an IDN domain as A-labels, as the headers have it
                    sender, recipient = ascii_address(sender), ascii_address(recipient)
                handle.write(b"Return-Path: <" + sender.encode() + b">\r\n")
                handle.write(b"Delivered-To: " + recipient.encode() + b"\r\n")
                handle.writelines(message)
            temporary.rename(self.root / "new" / name)
        except OSError as error:
            temporary.unlink(missing_ok=True)  # half a message is no message
            raise _failure(self.root, error) from None
        return Reply(250, f"2.0.0 written to {self.root / 'new' / name}")

    async def close(self) -> None:
        return None


class OutboxTransport:
    """The embedded default when no SMTP host is set: a Maildir any mail client can open."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def description(self) -> str:
        return f"outbox Maildir {self.root}"

    async def connect(self) -> OutboxConnection:
        try:
            for folder in (self.root, self.root / "tmp", self.root / "new", self.root / "cur"):
                folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as error:
            raise _failure(self.root, error) from None
        return OutboxConnection(self.root)


def _failure(root: Path, error: OSError) -> MailerError:
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFullError(f"outbox {root}")
    return TransportError(f"outbox {root}", error.strerror or str(error))
