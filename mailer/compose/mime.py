"""Header values made safe and RFC 2047-encoded; a message's byte skeleton, in shared chunks."""

from __future__ import annotations

import itertools
import os
import re
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from email.utils import format_datetime, parseaddr
from urllib.parse import quote

import idna

from mailer.compose.relaxed import relaxed_lines

MAX_LINE = 78
BREAKS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
SPACES = re.compile(r"\s+")
ATOMS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]*")  # atext words and spaces: no quoting
Q_SAFE = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+/-"
Q_PIECES = {" ": "_", **{char: char for char in Q_SAFE}}  # what Q encoding writes for each
ENCODED_WORD = re.compile(r"=\?.*\?=")
NAME_ADDR = re.compile(r"(.*)<([^<>]*)>")
LONG_WORD = re.compile(r"[^ ]{60}")  # a word too long to fold: encode it, to split it
CRLF = b"\r\n"
TEXT_HEAD = b'Content-Type: text/plain; charset="utf-8"\r\n' + (
    b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
)
HTML_HEAD = b'Content-Type: text/html; charset="utf-8"\r\n' + (
    b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
)
FrameBytes = tuple[bytes, bytes, bytes]


class Shared(bytes):
    """A chunk of a campaign's messages made once and put, the same object, in every
    reader's message: what writes messages may work on it once (SMTP's dot-stuffing)."""

    __slots__ = ()


DATE, MESSAGE_ID, LINE_END = Shared(b"Date: "), Shared(b"\r\nMessage-ID: "), Shared(b"\r\n")


def clean(value: str) -> str:
    """Turn every line break and control character into a space; collapse whitespace."""
    if value.isprintable() and "  " not in value and value.strip() == value:
        return value  # nothing to clean (the common case, kept fast)
    return SPACES.sub(" ", BREAKS.sub(" ", value)).strip()


def encoded_words(text: str, room: int = 75) -> list[str]:
    """Encode ``text`` as RFC 2047 Q encoded-words of at most 75 characters, whole characters.

    The first word is at most ``room`` characters, so that it fits after the header's name.
    """
    words: list[str] = []
    current, limit = "", min(room, 75) - 12
    for char in text:
        piece = Q_PIECES.get(char) or _q_piece(char)
        if len(current) + len(piece) > limit and current:
            words.append(f"=?utf-8?q?{current}?=")
            current, limit = "", 75 - 12
        current += piece
    words.append(f"=?utf-8?q?{current}?=")
    return words


def _q_piece(char: str) -> str:
    """``char`` as Q encoding writes it; remembered (a few hundred letters make most names)."""
    piece = "".join(f"={byte:02X}" for byte in char.encode("utf-8"))
    if len(Q_PIECES) < 10_000:
        Q_PIECES[char] = piece
    return piece


def fold(name: str, tokens: list[str]) -> bytes:
    """Write ``Name: tokens`` folded between tokens so that lines stay within 78 characters."""
    line = f"{name}:"
    lines: list[str] = []
    for token in tokens:
        if len(line) + 1 + len(token) > MAX_LINE:
            lines.append(line)
            line = " " + token
        else:
            line = f"{line} {token}"
    lines.append(line)
    return "\r\n".join(lines).encode("utf-8") + CRLF


def unstructured(name: str, value: str) -> bytes:
    """Encode a free-text header such as Subject."""
    value = clean(value)
    if value.isascii() and not ENCODED_WORD.search(value) and not LONG_WORD.search(value):
        return fold(name, value.split(" "))
    return fold(name, encoded_words(value, MAX_LINE - len(name) - 2))


def phrase(display: str, room: int = 75) -> list[str]:
    """Tokens for a display name: atoms, one quoted string, or encoded-words."""
    display = clean(display)
    if not display:
        return []
    if display.isascii() and not ENCODED_WORD.search(display) and not LONG_WORD.search(display):
        if ATOMS.fullmatch(display):
            return display.split(" ")
        quoted = '"' + display.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if len(quoted) <= 60:
            return [quoted]
    return encoded_words(display, room)


def address(addr: str) -> str:
    """Return an addr-spec safe to write: no spaces, brackets or breaks; IDNA domain if ASCII."""
    return ascii_address(clean(addr).replace(" ", "").replace("<", "").replace(">", ""))


def ascii_address(addr: str) -> str:
    """``addr`` with its domain in A-labels when its local part is ASCII, as a header and an
    envelope without SMTPUTF8 must carry it: IDNA 2008 with UTS #46, as email-validator reads
    addresses (straße.de is xn--strae-oqa.de; Python's own idna codec, IDNA 2003, would give
    strasse.de, another domain)."""
    if addr.isascii():  # nearly every address: nothing to look at
        return addr
    local, _, domain = addr.rpartition("@")
    if domain.isascii() or not local.isascii():
        return addr
    try:
        domain = idna.encode(domain, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        return addr
    return f"{local}@{domain}" if local else domain


def mailbox(name: str, display: str, addr: str) -> bytes:
    """Encode an address header (From, To, Reply-To) with an optional display name."""
    words = phrase(display, MAX_LINE - len(name) - 2)
    return fold(name, [*words, f"<{address(addr)}>"] if words else [address(addr)])


def url(value: str) -> str:
    """Make a URL safe inside <...>: no spaces, breaks, brackets or non-ASCII."""
    return quote(clean(value), safe="!#$%&'()*+,-./:;=?@[]^_`{|}~")


def split_mailbox(value: str) -> tuple[str, str]:
    """Split ``Name <addr>`` (or a bare address) as an editor writes it in mailer.toml."""
    value = clean(value)
    found = NAME_ADDR.fullmatch(value)
    if found:
        return found.group(1).strip().strip('"').strip(), found.group(2).strip()
    name, addr = parseaddr(value)
    return (name, addr) if addr else ("", value)


def boundary() -> str:
    """A new multipart boundary: "=_" can occur in neither quoted-printable nor base64, and
    all boundaries have one length, so none is the start of another."""
    return "=_mailer_" + os.urandom(12).hex()


def frame(alternative: str, related: Sequence[bytes], attached: Sequence[bytes]) -> FrameBytes:
    """The MIME frame around a message's two text parts: (its Content-Type, the blank line
    and every opening up to the text part's body; what comes between the text and the html
    part; everything after the html part). With inline images the html part and they form a
    multipart/related, the alternative's second part (RFC 2387's usual form, which clients
    show inline); with attachments all of it sits in multipart/mixed, the files after it."""
    header = multipart("alternative", alternative)
    opening = f"--{alternative}\r\n".encode() + TEXT_HEAD
    middle = f"\r\n--{alternative}\r\n".encode()
    end = f"\r\n--{alternative}--\r\n".encode()
    if related:
        inner = boundary()
        middle += multipart("related", inner, "text/html") + f"\r\n--{inner}\r\n".encode()
        images = b"".join(f"\r\n--{inner}\r\n".encode() + part for part in related)
        end = images + f"\r\n--{inner}--\r\n--{alternative}--\r\n".encode()
    middle += HTML_HEAD
    if attached:
        outer = boundary()
        opening = f"--{outer}\r\n".encode() + header + b"\r\n" + opening
        end += b"".join(f"--{outer}\r\n".encode() + part + CRLF for part in attached)
        end += f"--{outer}--\r\n".encode()
        header = multipart("mixed", outer)
    return header + b"\r\n" + opening, middle, end


def multipart(kind: str, boundary: str, root: str = "") -> bytes:
    """A multipart Content-Type header; ``root`` names a related part's first part."""
    tokens = [f"multipart/{kind};", f'boundary="{boundary}"' + (";" if root else "")]
    return fold("Content-Type", tokens + ([f'type="{root}"'] if root else []))


def domain_of(addr: str) -> str:
    return address(addr).rpartition("@")[2] or "localhost"


class Skeleton:
    """The shared headers and MIME frame of a campaign's messages, as bytes, built once."""

    def __init__(
        self,
        *,
        sender: str,
        subject: str,
        list_name: str,
        list_slug: str,
        reply_to: str = "",
        campaign: str = "campaign",
        related: Sequence[bytes] = (),
        attached: Sequence[bytes] = (),
    ) -> None:
        """``related`` are inline image parts and ``attached`` attachments, each a whole MIME
        part (headers, blank line, body without its last CRLF), encoded once for all readers."""
        self.sender = split_mailbox(sender)
        self.domain = domain_of(self.sender[1])
        self.campaign = re.sub(r"[^A-Za-z0-9.-]", "-", campaign) or "campaign"
        local = address(self.sender[1]).rpartition("@")[0] or "newsletter"
        slug = re.sub(r"[^A-Za-z0-9_-]", "-", list_slug) or "list"
        # The list rides in the address; the sender's From names the reader (as Mailman's -leave).
        self.mailto = f"mailto:{local}+unsubscribe-{slug}@{self.domain}?subject=unsubscribe"
        self.list_id = f"{slug}.{self.domain}"
        self.boundary = boundary()
        self.from_header = Shared(mailbox("From", *self.sender))
        self.subject_header = Shared(unstructured("Subject", subject))
        self.reply_to = split_mailbox(reply_to) if clean(reply_to) else None
        opening, middle, end = frame(self.boundary, related, attached)
        self.middle, self.end = Shared(middle), Shared(end)
        self.tail = Shared(
            b"".join(
                [
                    b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n",
                    mailbox("Reply-To", *self.reply_to) if self.reply_to else b"",
                    b"MIME-Version: 1.0\r\n",
                    opening,
                ]
            )
        )
        list_phrase = phrase(list_name, MAX_LINE - len("List-Id: "))
        self.list_id_header = Shared(fold("List-Id", [*list_phrase, f"<{self.list_id}>"]))
        # The frame's pieces each end a line, so their relaxed forms are fixed per campaign.
        opening = relaxed_lines(self.tail.partition(b"\r\n\r\n")[2])
        self.relaxed_frame = (opening, relaxed_lines(self.middle), relaxed_lines(self.end))
        self._second = -1
        self._unique, self._made = os.urandom(6).hex(), itertools.count()
        self._date = b""

    def message_id(self, reader_id: object) -> str:
        """Return a new unique Message-ID on the sender's domain: this skeleton's random
        prefix (each process has its own) and a count, so no system call per message."""
        return f"<{self.campaign}.{reader_id}.{self._unique}{next(self._made):x}@{self.domain}>"

    def date(self) -> bytes:
        """Return the Date header for now (formatted at most once a second)."""
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._date = format_datetime(datetime.fromtimestamp(now, UTC)).encode()
        return self._date

    def unsubscribe_header(self, unsubscribe_url: str) -> bytes:
        return fold("List-Unsubscribe", [f"<{url(unsubscribe_url)}>,", f"<{self.mailto}>"])

    def relaxed_body(self, text: list[bytes], html: list[bytes]) -> list[bytes]:
        """The DKIM relaxed body as chunks, from the relaxed chunks (whole lines) of the parts.
        The body ends in the closing boundary line, so no empty lines at its end to drop."""
        opening, middle, end = self.relaxed_frame
        return [opening, *text, middle, *html, end]

    def assemble(
        self,
        *,
        to_name: str,
        to_addr: str,
        unsubscribe_url: str,
        message_id: str,
        text: list[bytes],
        html: list[bytes],
        date: bytes | None = None,
    ) -> list[bytes]:
        """The shared bytes with one reader's headers and encoded parts, as chunks in order:
        joined only where they are written, so a campaign's attachments are never copied per
        reader."""
        return [
            self.from_header,
            mailbox("To", to_name, to_addr),
            self.subject_header,
            DATE,
            date or self.date(),
            MESSAGE_ID,
            clean(message_id).replace(" ", "").encode("ascii", "replace"),
            LINE_END,
            self.list_id_header,
            self.unsubscribe_header(unsubscribe_url),
            self.tail,
            *text,
            self.middle,
            *html,
            self.end,
        ]
