"""The project's own checker for sent newsletter messages: wire format, headers, MIME structure."""

from __future__ import annotations

import argparse
import email
import email.policy
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from email.errors import HeaderParseError
from email.header import decode_header
from email.message import Message
from email.utils import parsedate_to_datetime
from pathlib import Path

# What the checker holds a message to; each rule below names the RFC or the project promise.
MAX_LINE = 78  # RFC 5322 2.1.1 recommends 78; the README promises no longer line on the wire
REQUIRED = ("From", "To", "Subject", "Date", "Message-ID", "MIME-Version")
AT_MOST_ONCE = (
    *REQUIRED,
    "Reply-To",
    "Sender",
    "Cc",
    "In-Reply-To",
    "References",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
)
ENVELOPE = ("To", "Delivered-To", "Return-Path")  # a non-ASCII address here means SMTPUTF8
ONE_CLICK = "List-Unsubscribe=One-Click"  # RFC 8058: the only value List-Unsubscribe-Post may have
TEXT_ENCODINGS = ("7bit", "quoted-printable", "base64")  # safe without 8BITMIME

FIELD_NAME = re.compile(rb"[\x21-\x39\x3b-\x7e]+")  # RFC 5322 ftext: printable ASCII but ":"
CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")  # not VCHAR or WSP in a header value
ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
DOT_ATOM = rf"{ATEXT}(?:\.{ATEXT})*"
MESSAGE_ID = re.compile(rf"<{DOT_ATOM}@(?:{DOT_ATOM}|\[[^\[\]\\\s]*\])>")  # RFC 5322 3.6.4
# RFC 2919: [phrase] <label.domain>; the phrase may be a quoted string holding < and >.
QUOTED = r'"(?:[^"\\]|\\.)*"'
LIST_ID = re.compile(rf"(?:{QUOTED}|[^<>\"])*<{ATEXT}(?:\.{ATEXT})+>\s*")
BRACKETED = re.compile(r"<([^<>]*)>")
WEB_URL = re.compile(r"https?://\S+", re.IGNORECASE)
MAILTO = re.compile(r"mailto:\S+", re.IGNORECASE)
BAD_QP_ESCAPE = re.compile(rb"=(?![0-9A-Fa-f]{2}|\r\n|\n|\r|\Z)")


@dataclass
class Field:
    """One header field as it is on the wire: its name and its unfolded value."""

    name: str
    value: bytes

    @property
    def text(self) -> str:
        """The value as text (UTF-8, undecodable bytes replaced), without the leading space."""
        return self.value.decode("utf-8", errors="replace").strip()


def check_message(raw: bytes, name: str = "message") -> list[str]:
    """Return every problem found in one raw message, each as one line ``NAME: what``."""
    fields, problems = parse_fields(raw)
    problems = [*wire_problems(raw), *problems]
    try:
        problems += header_problems(fields)
        message = email.message_from_bytes(raw, policy=email.policy.default)
        problems += mime_problems(message)
    except Exception as error:  # the stdlib parser itself trips over some broken headers
        problems.append(f"cannot be parsed: {type(error).__name__}: {error}")
    return [f"{name}: {' '.join(problem.split())}" for problem in problems]


def check_paths(paths: Iterable[Path]) -> tuple[int, list[str]]:
    """Check .eml files and Maildir folders (the entries in new/ and cur/).

    A folder that is not a Maildir contributes the .eml files under it. A path that does not
    exist, or holds no message, is a problem: a check of nothing must not pass unnoticed.
    Returns the number of messages checked and the problems found in them.
    """
    count = 0
    problems: list[str] = []
    for path in map(Path, paths):
        files = message_files(path)
        if files is None:
            problems.append(f"{path}: no such file or folder")
        elif not files:
            problems.append(f"{path}: holds no messages")
        for file in files or []:
            count += 1
            try:
                raw = file.read_bytes()
            except OSError as error:
                problems.append(f"{file}: cannot be read: {error.strerror}")
                continue
            problems += check_message(raw, str(file))
    return count, problems


def message_files(path: Path) -> list[Path] | None:
    """The message files a path stands for, sorted; None when the path does not exist."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        return None
    maildir = [path / "new", path / "cur"]
    if any(folder.is_dir() for folder in maildir):
        entries = (entry for folder in maildir if folder.is_dir() for entry in folder.iterdir())
        return sorted(e for e in entries if e.is_file() and not e.name.startswith("."))
    return sorted(file for file in path.rglob("*.eml") if file.is_file())


# The wire: line endings, line lengths, NUL bytes


def wire_problems(raw: bytes) -> list[str]:
    """Lines that do not end in CRLF or are over 78 characters (not counting the CRLF); NULs."""
    bare: dict[bytes, list[int]] = {b"\n": [], b"\r": []}
    too_long: list[int] = []
    unterminated = False
    in_head = True
    for number, line in enumerate(raw.splitlines(keepends=True), 1):
        content = line.rstrip(b"\r\n")
        ending = line[len(content) :]
        if ending in bare:
            bare[ending].append(number)
        unterminated = not ending  # only the last line can lack an ending
        in_head = in_head and bool(content)
        if characters(content) > MAX_LINE and not (in_head and unfoldable(content)):
            too_long.append(number)
    problems = [
        f"bare {kind} instead of CRLF at the end of {at(lines)}"
        for kind, lines in (("LF", bare[b"\n"]), ("CR", bare[b"\r"]))
        if lines
    ]
    if unterminated:
        problems.append("the last line does not end in CRLF")
    if too_long:
        problems.append(f"over {MAX_LINE} characters: {at(too_long)}")
    if (nuls := raw.count(0)) > 0:
        problems.append(f"{plural(nuls, 'NUL byte')} (first at offset {raw.find(0)})")
    return problems


def unfoldable(line: bytes) -> bool:
    """A folded header line holding one word with nowhere to fold it (a long URL in
    List-Unsubscribe): RFC 5322 allows it up to 998 characters."""
    return line[:1] in (b" ", b"\t") and len(line.split()) == 1 and len(line) <= 998


def characters(line: bytes) -> int:
    """A line's length in characters: octets for ASCII, code points for UTF-8 (RFC 6532)."""
    if line.isascii():
        return len(line)
    return len(line.decode("utf-8", errors="replace"))


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def at(lines: list[int], shown: int = 5) -> str:
    """``line 3``, or ``lines 3, 4, 9, 11, 12 and 2 more``."""
    listed = ", ".join(map(str, lines[:shown]))
    more = f" and {len(lines) - shown} more" if len(lines) > shown else ""
    return f"line {listed}" if len(lines) == 1 else f"lines {listed}{more}"


# Headers


def parse_fields(raw: bytes) -> tuple[list[Field], list[str]]:
    """Split the header block into fields, as a lenient receiver would (at any line ending).

    A line that is neither ``name: value`` with a valid field name nor a folded continuation is
    a problem: it is how an injected line break shows, and receivers differ on what it means.
    """
    fields: list[Field] = []
    problems: list[str] = []
    for number, line in enumerate(raw.splitlines(), 1):
        if not line:
            return fields, problems
        if line[:1] in (b" ", b"\t"):
            if fields:
                fields[-1].value += line
            else:
                problems.append("the first header line is a continuation of nothing")
            continue
        name, colon, value = line.partition(b":")
        if colon and FIELD_NAME.fullmatch(name):
            fields.append(Field(name.decode("ascii"), value))
        else:
            problems.append(f"header line {number} is not a valid field: {line[:40]!r}")
    problems.append("no empty line ends the header block")
    return fields, problems


def header_problems(fields: list[Field]) -> list[str]:
    """Presence and form of the headers, and of the list headers when the message has List-Id."""
    by_name: dict[str, list[Field]] = {}
    for field in fields:
        by_name.setdefault(field.name.lower(), []).append(field)
    problems = []
    for name in AT_MOST_ONCE:
        found = len(by_name.get(name.lower(), []))
        if found > 1:
            problems.append(f"{name} header appears {found} times")
        elif not found and name in REQUIRED:
            problems.append(f"missing {name} header")
    present = {name: found[0] for name, found in by_name.items()}
    # An empty Subject is allowed (RFC 5322 3.6.5); the other required fields need a value.
    blank = {
        name
        for name in REQUIRED
        if name != "Subject" and name.lower() in present and not present[name.lower()].text
    }
    problems += [f"{name} header is empty" for name in sorted(blank)]
    smtputf8 = is_smtputf8(by_name)
    for field in fields:
        problems += value_problems(field, smtputf8)

    def single(name: str) -> str | None:
        field = present.get(name.lower())
        return field.text if field and name not in blank else None

    if (date := single("Date")) is not None:
        try:
            parsedate_to_datetime(date)
        except (TypeError, ValueError, IndexError, OverflowError):
            problems.append(f"Date header does not parse as an RFC 5322 date: {date!r}")
    if (message_id := single("Message-ID")) is not None and not MESSAGE_ID.fullmatch(message_id):
        problems.append(f"Message-ID is not <left@right>: {message_id!r}")
    if (version := single("MIME-Version")) is not None and version.split("(")[0].strip() != "1.0":
        problems.append(f"MIME-Version is {version!r}, not 1.0")
    if (sender := single("From")) is not None and len(addresses(sender)) != 1:
        problems.append(f"From header must hold exactly one address: {sender!r}")
    if (to := single("To")) is not None and not addresses(to):
        problems.append(f"To header holds no address: {to!r}")
    if "list-id" in present:
        problems += list_problems(present)
    return problems


def is_smtputf8(by_name: dict[str, list[Field]]) -> bool:
    """Whether the message goes out with SMTPUTF8 (RFC 6531), by a simple rule: an address in
    To is non-ASCII, or the envelope recipient or sender that a delivery records (Delivered-To,
    Return-Path: the outbox Maildir writes both) is. Only then may header values hold raw UTF-8
    (RFC 6532); any other message must encode non-ASCII header text as RFC 2047 encoded-words.
    """
    return any(
        not addr.isascii()
        for name in ENVELOPE
        for field in by_name.get(name.lower(), [])
        for addr in addresses(field.text)
    )


def addresses(value: str) -> list[str]:
    """The addr-specs (``local@domain``) in a header value parsed as an address list."""
    try:
        header = email.policy.default.header_factory("To", value)
    except (HeaderParseError, IndexError, ValueError):  # the stdlib parser trips on some garbage
        return []
    found = getattr(header, "addresses", ())
    return [a.addr_spec for a in found if a.username and a.domain]


def value_problems(field: Field, smtputf8: bool) -> list[str]:
    """Control characters, unencoded 8-bit text, and encoded-words that do not decode."""
    problems = []
    if control := CONTROL.search(field.value):
        problems.append(f"{field.name} header holds control character 0x{control[0][0]:02X}")
    if not field.value.isascii():
        if not smtputf8:
            problems.append(
                f"{field.name} header holds raw 8-bit bytes, but the message is not SMTPUTF8"
                " (no non-ASCII address in To or the envelope): encode it as RFC 2047 words"
            )
        else:
            try:
                field.value.decode("utf-8")
            except UnicodeDecodeError as error:
                problems.append(f"{field.name} header is not valid UTF-8 ({error.reason})")
    if "=?" in field.text:
        try:
            for chunk, charset in decode_header(field.text):
                if charset and charset != "unknown-8bit" and isinstance(chunk, bytes):
                    chunk.decode(charset)
        except (HeaderParseError, LookupError, ValueError) as error:  # ValueError: bad charset
            problems.append(
                f"{field.name} header has an encoded-word that does not decode: {error}"
            )
    return problems


def list_problems(present: dict[str, Field]) -> list[str]:
    """RFC 2919 List-Id; RFC 2369 and 8058 List-Unsubscribe with one-click and mailto."""
    problems = []
    if not LIST_ID.fullmatch(list_id := present["list-id"].text):
        problems.append(f"List-Id is not 'name <id.domain>' or '<id.domain>': {list_id!r}")
    unsubscribe = present.get("list-unsubscribe")
    if unsubscribe is None:
        problems.append("List-Id without List-Unsubscribe")
    else:
        uris = BRACKETED.findall(unsubscribe.text)
        if not any(WEB_URL.fullmatch(uri) for uri in uris):
            problems.append("List-Unsubscribe has no <https://...> URL (RFC 8058 one-click)")
        if not any(MAILTO.fullmatch(uri) for uri in uris):
            problems.append("List-Unsubscribe has no <mailto:...> address")
    post = present.get("list-unsubscribe-post")
    if post is None:
        problems.append("List-Id without List-Unsubscribe-Post")
    elif post.text != ONE_CLICK:
        problems.append(f"List-Unsubscribe-Post is {post.text!r}, not {ONE_CLICK!r}")
    return problems


# MIME structure


def mime_problems(message: Message) -> list[str]:
    """The alternatives and their order, then every part's declarations and payload."""
    problems = []
    alternative = find_alternative(message)
    if alternative is None:
        problems.append(
            f"top level is {message.get_content_type()}, and no multipart/alternative in it"
        )
    else:
        kinds = [_shown_as(part) for part in subparts(alternative)]
        if not kinds or kinds[0] != "text/plain":
            problems.append(f"first alternative is {(kinds or ['nothing'])[0]}, not text/plain")
        if len(kinds) < 2 or kinds[-1] != "text/html":
            last = kinds[-1] if len(kinds) > 1 else "missing"
            problems.append(f"last alternative is {last}, not text/html")
    for label, part, boundaries in walk(message, "top level", ()):
        problems += part_problems(label, part, boundaries)
    return problems


def _shown_as(part: Message) -> str:
    """An alternative's type as a client shows it: a multipart/related is its root (its first
    part, the html with its inline images after it)."""
    kind = part.get_content_type()
    if kind == "multipart/related":
        inside = subparts(part)
        return f"{inside[0].get_content_type()}" if inside else kind
    return kind


def find_alternative(part: Message) -> Message | None:
    """The multipart/alternative at the top, or inside a top-level multipart/mixed or related."""
    kind = part.get_content_type()
    if kind == "multipart/alternative":
        return part
    if kind in ("multipart/mixed", "multipart/related"):
        for subpart in subparts(part):
            if found := find_alternative(subpart):
                return found
    return None


def subparts(part: Message) -> list[Message]:
    payload = part.get_payload() if part.get_content_maintype() == "multipart" else None
    return [p for p in payload if isinstance(p, Message)] if isinstance(payload, list) else []


def walk(
    part: Message, label: str, boundaries: tuple[str, ...]
) -> Iterator[tuple[str, Message, tuple[str, ...]]]:
    """Every part with a label (``part 2.1``) and the boundaries of the multiparts around it."""
    yield label, part, boundaries
    boundary = part.get_boundary()
    inner = (*boundaries, boundary) if boundary else boundaries
    prefix = "part " if label == "top level" else f"{label}."
    for number, subpart in enumerate(subparts(part), 1):
        yield from walk(subpart, f"{prefix}{number}", inner)


def part_problems(label: str, part: Message, boundaries: tuple[str, ...]) -> list[str]:
    """One part's parser defects; a leaf's transfer encoding, charset, payload and boundaries."""
    kind = part.get_content_type()
    label = f"{label} ({kind})"
    problems = []
    if part.get_content_maintype() == "multipart":
        if not part.get_boundary():
            problems.append(f"{label} has no boundary")
    elif not part.is_multipart():  # a leaf; an attached message/rfc822 is its sender's business
        encoding = str(part.get("Content-Transfer-Encoding", "7bit")).strip().lower()
        try:  # undecoded; 8-bit bytes come back decoded by the declared charset, so non-ASCII
            raw = str(part.get_payload()).encode("utf-8", errors="surrogateescape")
        except (LookupError, ValueError) as error:  # a charset no codec takes, with 8-bit bytes
            problems.append(f"{label} payload cannot be read: {error}")
            raw = b""
        if encoding in ("8bit", "binary"):
            problems.append(f"{label} is sent {encoding}: use quoted-printable or base64")
        elif encoding not in TEXT_ENCODINGS:
            problems.append(f"{label} has an unknown Content-Transfer-Encoding {encoding!r}")
        elif not raw.isascii():
            problems.append(f"{label} is declared {encoding} but holds 8-bit bytes")
        if encoding == "quoted-printable" and (bad := BAD_QP_ESCAPE.search(raw)):
            problems.append(f"{label} has a bad quoted-printable escape at offset {bad.start()}")
        for boundary in boundaries:
            if boundary.encode("utf-8", errors="surrogateescape") in raw:
                problems.append(f"{label} holds the boundary {boundary!r} in its body")
        decoded = part.get_payload(decode=True)
        if part.get_content_maintype() == "text":
            problems += text_problems(label, part, decoded)
    for defect in part.defects:
        what = str(defect) or (type(defect).__doc__ or "").strip()
        problems.append(f"{label} parser defect {type(defect).__name__}: {what}")
    return problems


def text_problems(label: str, part: Message, decoded: object) -> list[str]:
    """A text part declares charset=utf-8 and its decoded payload is UTF-8."""
    charset = part.get_content_charset()
    if charset is None:
        return [f"{label} declares no charset (want charset=utf-8)"]
    if charset != "utf-8":
        return [f"{label} declares charset={charset}, not utf-8"]
    if not isinstance(decoded, bytes):
        return [f"{label} has no payload to decode"]
    try:
        decoded.decode("utf-8")
    except UnicodeDecodeError as error:
        return [f"{label} is not valid UTF-8: {error.reason} at byte {error.start}"]
    return []


def main(argv: Sequence[str] | None = None) -> int:
    """``message_checks.py PATH...``: print each problem, then a count; exit 1 on any problem."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("paths", nargs="+", type=Path, help=".eml files or Maildir folders")
    args = parser.parse_args(argv)
    count, problems = check_paths(args.paths)
    for problem in problems:
        print(problem)
    print(f"checked: {count} messages, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
