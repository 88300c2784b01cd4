"""Signed tokens for unsubscribe and confirm links: HMAC-SHA256 over purpose, reader and list."""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import hmac
import os
import re
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mailer.errors import FileInputError

SECRET_NAME = ".mailer-secret"
SECRET_BYTES = 32
MIN_SECRET_BYTES = 16  # a secret shorter than this was never written whole
# What os.link raises where the file system has no hard links.
NO_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS, errno.EMLINK}
MAC_BYTES = 16
# Purposes: u (unsubscribe: reader, list), k (unsubscribe from every list of a campaign sent to
# several: reader, campaign), c (confirm: reader, list), p (preferences: reader, the list the
# message came from, 0 for several), a (a new address: reader, the random number of their
# request, issued). Unsubscribe and preferences tokens never expire; confirm and address
# tokens carry the second they were issued.
TOKEN = re.compile(
    r"([uckpa])([0-9a-z]{1,13})\.([0-9a-z]{1,13})(?:\.([0-9a-z]{1,8}))?\.([A-Za-z0-9_-]{22})"
)


@dataclass(frozen=True, slots=True)
class TokenSubject:
    purpose: str
    subscriber_id: int
    list_id: int  # the campaign's id for purpose k; the request's number for a
    issued: int | None = None  # Unix seconds, for confirm tokens


def load_secret(workspace: Path) -> bytes:
    """Read the workspace's signing secret, creating it (mode 0600) on first use. A file too
    short to be one (left empty by a creator that died) is an error, never an empty key."""
    path = workspace / SECRET_NAME
    try:
        secret = bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        return _create_secret(workspace, path)
    except ValueError:
        secret = b""
    except OSError as error:
        raise FileInputError(path, f"cannot read: {error.strerror}") from None
    if len(secret) < MIN_SECRET_BYTES:
        raise FileInputError(path, "not a hex secret; delete it to create a new one")
    return secret


def _create_secret(workspace: Path, path: Path) -> bytes:
    """A new secret, written whole under another name and then linked into place: a process
    reading at that moment finds it complete or not at all, and of two processes creating it
    at once, the second reads the first's. Where the file system has no hard links (FAT, some
    network shares), it is created in place, and a reader that comes too soon finds it short."""
    secret = secrets.token_bytes(SECRET_BYTES)
    try:
        workspace.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(prefix=f"{SECRET_NAME}.", dir=workspace)
    except OSError as error:
        raise FileInputError(path, f"cannot create: {error.strerror}") from None
    try:
        _write_secret(descriptor, secret)  # mkstemp made it 0600
        try:
            os.link(temporary, path)
        except OSError as error:
            if error.errno not in NO_LINKS:
                raise
            _write_secret(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), secret)
        _sync_folder(workspace)
    except FileExistsError:
        return load_secret(workspace)  # another process created it first
    except OSError as error:
        raise FileInputError(path, f"cannot create: {error.strerror}") from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
    return secret


def _write_secret(descriptor: int, secret: bytes) -> None:
    with os.fdopen(descriptor, "w") as handle:
        handle.write(secret.hex() + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def _sync_folder(folder: Path) -> None:
    """The new name survives a power cut: links already signed with the secret stay good."""
    with contextlib.suppress(OSError):  # a folder that cannot be opened for this is no error
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


class Signer:
    """Makes and checks tokens: each names its subject and cannot be forged without the secret."""

    def __init__(self, secret: bytes) -> None:
        self.secret = secret

    def _mac(self, payload: str) -> str:
        digest = hmac.new(self.secret, payload.encode(), hashlib.sha256).digest()[:MAC_BYTES]
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def make(
        self, purpose: str, subscriber_id: int, list_id: int, issued: int | None = None
    ) -> str:
        """A token for ``purpose``; with ``issued`` (Unix seconds) the token says when."""
        payload = f"{purpose}{_base36(subscriber_id)}.{_base36(list_id)}"
        if issued is not None:
            payload += f".{_base36(issued)}"
        return f"{payload}.{self._mac(payload)}"

    def check(self, token: str) -> TokenSubject | None:
        """Return what the token names, or None for anything not signed by us."""
        found = TOKEN.fullmatch(token)
        if not found:
            return None
        payload = token.rsplit(".", 1)[0]
        if not hmac.compare_digest(self._mac(payload), found.group(5)):
            return None
        purpose, subscriber, listing, issued = found.group(1, 2, 3, 4)
        return TokenSubject(
            purpose, int(subscriber, 36), int(listing, 36), int(issued, 36) if issued else None
        )


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
        if not number:
            return out


VERP_TAG = re.compile(r"bounces\+([0-9a-z]+)-([0-9a-z]+)-([0-9a-f]{12})", re.IGNORECASE)


def verp_local_part(signer: Signer, subscriber_id: int, campaign_id: int) -> str:
    """``bounces+{subscriber}-{campaign}-{mac}``: lower-case only, since MTAs may fold case."""
    payload = f"{_base36(subscriber_id)}-{_base36(campaign_id)}"
    mac = hmac.new(signer.secret, b"b" + payload.encode(), hashlib.sha256).hexdigest()[:12]
    return f"bounces+{payload}-{mac}"


def parse_verp(signer: Signer, address: str) -> tuple[int, int] | None:
    """Return (subscriber id, campaign id) from a VERP address we signed, else None."""
    found = VERP_TAG.search(address.partition("@")[0])
    if not found:
        return None
    subscriber, campaign, mac = (part.lower() for part in found.groups())
    expected = verp_local_part(signer, int(subscriber, 36), int(campaign, 36)).rsplit("-", 1)[1]
    if not hmac.compare_digest(expected, mac):
        return None
    return int(subscriber, 36), int(campaign, 36)
