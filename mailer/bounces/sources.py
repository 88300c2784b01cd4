"""Mailboxes that bounces arrive in: a Maildir, an mbox file, or an IMAP folder over TLS."""

from __future__ import annotations

import imaplib
import mailbox
import os
import re
import ssl
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

from mailer.errors import FileInputError, InputError, TransportError
from mailer.models import heard_line

KEYWORD = "$MailerProcessed"
HINT = "give a Maildir folder, an mbox file or imaps://user@host[:port]/INBOX"


@dataclass(frozen=True, slots=True)
class Incoming:
    """One message as read: ``key`` names it within its source (file name, mbox index, UID)."""

    key: str
    data: bytes


# A source marks a processed message and never deletes it (an mbox is left as it is: the
# database remembers what was read).
class MailSource(Protocol):
    @property
    def description(self) -> str: ...
    def messages(self) -> Iterator[Incoming]: ...
    def mark(self, item: Incoming) -> None: ...


@contextmanager
def open_source(
    spec: str,
    *,
    imap_password: str = "",
    ssl_context: ssl.SSLContext | None = None,
    timeout: float = 30.0,
) -> Iterator[MailSource]:
    """Open SOURCE: a Maildir path, an mbox path, or ``imaps://user@host[:port]/FOLDER``."""
    if "://" in spec:
        imap = ImapSource.connect(spec, imap_password, ssl_context, timeout)
        try:
            yield imap
        finally:
            imap.close()
        return
    path = Path(spec).expanduser()
    if path.is_dir():
        if not ((path / "new").is_dir() and (path / "cur").is_dir()):
            raise InputError(f"bounce source {spec!r}: a folder without new/ and cur/ ({HINT})")
        yield MaildirSource(path)
    elif path.is_file():
        yield MboxSource.open(path)
    else:
        raise InputError(f"bounce source {spec!r}: no such file or folder ({HINT})")


class MaildirSource:
    """Messages in new/, and in cur/ without the Seen flag; marking moves them to cur/ with S."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def description(self) -> str:
        return f"maildir:{self.path}"

    def messages(self) -> Iterator[Incoming]:
        for sub in ("new", "cur"):
            try:
                names = sorted(
                    (e.name for e in os.scandir(self.path / sub) if e.is_file()), key=_arrival
                )
            except OSError as error:
                raise FileInputError(self.path / sub, f"cannot list: {error.strerror}") from None
            for name in names:
                if name.startswith(".") or (sub == "cur" and "S" in _flags(name)):
                    continue
                try:
                    data = (self.path / sub / name).read_bytes()
                except FileNotFoundError:
                    continue  # moved by a mail client meanwhile
                except OSError as error:
                    raise FileInputError(self.path / sub / name, error.strerror or "") from None
                yield Incoming(f"{sub}/{name}", data)

    def mark(self, item: Incoming) -> None:
        sub, _, name = item.key.partition("/")
        base = name.partition(":")[0]
        flags = "".join(sorted(set(_flags(name)) | {"S"}))
        target = self.path / "cur" / f"{base}:2,{flags}"
        try:
            os.rename(self.path / sub / name, target)
        except OSError as error:
            reason = f"cannot mark as read: {error.strerror}"
            raise FileInputError(self.path / item.key, reason) from None


def _arrival(name: str) -> list[tuple[int, str]]:
    # Maildir names start "SECONDS.M<micro>P<pid>Q<n>": the numbers are not zero-padded, so plain
    # string order would put M99999 after M100000 and process bounces out of arrival order.
    return [(int(part), "") if part.isdigit() else (-1, part) for part in _DIGITS.split(name)]


_DIGITS = re.compile(r"(\d+)")


def _flags(name: str) -> str:
    _, sep, info = name.partition(":")
    return info[2:] if sep and info.startswith("2,") else ""


class MboxSource:
    """An mbox file, read as it is and never rewritten."""

    def __init__(self, path: Path, box: mailbox.mbox) -> None:
        self.path, self.box = path, box

    @classmethod
    def open(cls, path: Path) -> MboxSource:
        try:
            with path.open("rb") as handle:
                start = handle.read(5)
        except OSError as error:
            raise FileInputError(path, f"cannot read: {error.strerror}") from None
        if start and start != b"From ":
            raise InputError(f"bounce source {str(path)!r}: not an mbox file ({HINT})")
        return cls(path, mailbox.mbox(path, create=False))

    @property
    def description(self) -> str:
        return f"mbox:{self.path}"

    def messages(self) -> Iterator[Incoming]:
        try:
            for number, key in enumerate(self.box.iterkeys(), start=1):
                yield Incoming(f"#{number}", self.box.get_bytes(key))
        except OSError as error:
            raise FileInputError(self.path, f"cannot read: {error.strerror}") from None

    def mark(self, item: Incoming) -> None:
        """Nothing to do: the database's processed_mail table remembers the message."""


class ImapSource:
    """A folder on an IMAP server over TLS, certificate checked against the system's CAs."""

    def __init__(self, where: str, imap: imaplib.IMAP4, keyword: bool) -> None:
        self.where, self.imap, self.keyword = where, imap, keyword

    @classmethod
    def connect(
        cls, spec: str, password: str, context: ssl.SSLContext | None, timeout: float
    ) -> ImapSource:
        url = urlsplit(spec)
        try:
            port = url.port or 993
        except ValueError:
            raise InputError(f"bounce source {spec!r}: bad port ({HINT})") from None
        if url.scheme != "imaps" or not url.hostname or not url.username:
            raise InputError(f"bounce source {spec!r}: expected imaps://user@host ({HINT})")
        if not (unquote(url.username).isascii() and unquote(url.path).isascii()):
            raise InputError(
                f"bounce source {spec!r}: the IMAP user and folder must be ASCII, as imaplib"
                " sends them (a folder in modified UTF-7: Caf&AOk-)"
            )
        if url.password:
            raise InputError("put the IMAP password in MAILER_BOUNCES_IMAP_PASSWORD, not the URL")
        if not password:
            raise InputError(f"no IMAP password for {spec}: set MAILER_BOUNCES_IMAP_PASSWORD")
        where = f"imaps://{url.hostname}:{port}"
        folder = unquote(url.path.lstrip("/")) or "INBOX"
        try:
            imap = imaplib.IMAP4_SSL(
                url.hostname,
                port,
                ssl_context=context or ssl.create_default_context(),
                timeout=timeout,
            )
        except ssl.SSLCertVerificationError as error:
            raise TransportError(
                where, f"TLS certificate not trusted: {error.verify_message}"
            ) from None
        except (OSError, imaplib.IMAP4.error, UnicodeError) as error:
            raise TransportError(where, f"cannot connect: {_said(error)}") from None
        source, user = cls(where, imap, keyword=False), unquote(url.username)
        try:
            source._check(imap.login(user, password), f"login as {user}")
            source._check(imap.select(_quote(folder)), f"folder {folder}")
        except (OSError, imaplib.IMAP4.error, UnicodeError) as error:
            source.close()
            reason = f"login as {user} or folder {folder} refused: {_said(error)}"
            raise TransportError(where, reason) from None
        except BaseException:
            source.close()
            raise
        flags = imap.untagged_responses.get("PERMANENTFLAGS", [b""])[-1] or b""
        source.keyword = b"\\*" in flags or KEYWORD.encode() in flags
        return source

    @property
    def description(self) -> str:
        return self.where

    def _check(self, answer: tuple[str, Sequence[object]] | None, what: str) -> Sequence[object]:
        typ, data = answer or ("NO", [])
        if typ != "OK":
            text = _said(b" ".join(d for d in data if isinstance(d, bytes)))
            raise TransportError(self.where, f"{what} refused: {text}")
        return data

    def _call(self, what: str, *args: str) -> Sequence[object]:
        try:
            return self._check(self.imap.uid(*args), what)
        except (OSError, imaplib.IMAP4.error, UnicodeError) as error:
            raise TransportError(self.where, f"{what} failed: {_said(error)}") from None

    def messages(self) -> Iterator[Incoming]:
        query = ("UNKEYWORD", KEYWORD) if self.keyword else ("UNSEEN",)
        found = self._call("search", "SEARCH", *query)
        uids = b" ".join(d for d in found if isinstance(d, bytes)).split()
        for uid in uids:
            data = self._call("fetch", "FETCH", uid.decode(), "(BODY.PEEK[])")
            body = next((d[1] for d in data if isinstance(d, tuple) and len(d) == 2), None)
            if isinstance(body, bytes):
                yield Incoming(uid.decode(), body)

    def mark(self, item: Incoming) -> None:
        flags = f"(\\Seen {KEYWORD})" if self.keyword else "(\\Seen)"
        self._call("flag", "STORE", item.key, "+FLAGS", flags)

    def close(self) -> None:
        with suppress(OSError, imaplib.IMAP4.error):
            if self.imap.state == "SELECTED":
                self.imap.close()
        with suppress(OSError, imaplib.IMAP4.error):
            self.imap.logout()


def _quote(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _said(said: bytes | BaseException) -> str:
    """An IMAP server's words (its bytes, or imaplib's error holding them: a repr of bytes
    otherwise) as one printable line."""
    if isinstance(said, imaplib.IMAP4.error) and len(said.args) == 1:
        said = said.args[0] if isinstance(said.args[0], bytes) else said
    text = said.decode("utf-8", "replace") if isinstance(said, bytes) else str(said)
    return heard_line(text)
