"""The project's message checker accepts a well-formed newsletter and flags each kind of fault."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.message_checks import check_message, check_paths, main

CHECKER = Path(__file__).with_name("message_checks.py")
BOUNDARY = "test-boundary-42"
HEADERS = {
    "From": "Lower Vale Survey <news@example.org>",
    "To": "Zoë Brontë <zoe@example.org>",
    "Subject": "Autumn report",
    "Date": "Fri, 20 Nov 2026 09:00:00 +0000",
    "Message-ID": "<2026-11.42@example.org>",
    "List-Id": "Lower Vale Survey <survey.example.org>",
    "List-Unsubscribe": "<https://example.org/u/abc>, <mailto:news+unsubscribe@example.org>",
    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
}
TEXT = "Dear Zoë,\n\nLevels rose.\nThe river is high and the weirs are full this autumn.\n"
HTML = "<p>Dear Zoë,</p>\n<p>The water rose.</p>\n<p>The river is high.</p>\n"


def newsletter(
    changes: Mapping[str, str | None] | None = None, *, html_first: bool = False, utf8: bool = False
) -> EmailMessage:
    """A newsletter as the stdlib makes it for SMTP: text/plain and text/html alternatives,
    quoted-printable, with list headers; ``changes`` replaces (or with None drops) headers."""
    message = EmailMessage(policy=SMTP.clone(utf8=utf8))
    for name, value in {**HEADERS, **(changes or {})}.items():
        if value is not None:
            message[name] = value
    first, second = [(TEXT, "plain"), (HTML, "html")][:: -1 if html_first else 1]
    message.set_content(first[0], subtype=first[1], cte="quoted-printable")
    message.add_alternative(second[0], subtype=second[1], cte="quoted-printable")
    message.set_boundary(BOUNDARY)
    return message


def build(
    changes: Mapping[str, str | None] | None = None, *, html_first: bool = False, utf8: bool = False
) -> bytes:
    """The newsletter's bytes on the wire."""
    return newsletter(changes, html_first=html_first, utf8=utf8).as_bytes()


GOOD = build()


def swap(raw: bytes, old: bytes, new: bytes) -> bytes:
    """``raw`` with its one occurrence of ``old`` replaced: a mutation that surely happened."""
    assert raw.count(old) == 1, old
    return raw.replace(old, new)


def test_a_well_formed_newsletter_passes() -> None:
    raw = build()
    assert raw.count(b"\r\n") == raw.count(b"\n")  # the stdlib wrote CRLF throughout
    assert b"quoted-printable" in raw and b"Zo=C3=AB" in raw
    assert check_message(raw) == []


def test_a_line_of_exactly_78_characters_passes() -> None:
    assert check_message(swap(GOOD, b"Levels rose.", b"x" * 78)) == []


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        pytest.param(
            b"Levels rose.\r\n",
            b"Levels rose.\n",
            "bare LF instead of CRLF at the end of line 19",
            id="bare-lf",
        ),
        pytest.param(
            b"Levels rose.\r\n",
            b"Levels rose.\r",
            "bare CR instead of CRLF at the end of line 19",
            id="bare-cr",
        ),
        pytest.param(b"Levels rose.", b"x" * 80, "over 78 characters: line 19", id="long-line"),
        pytest.param(b"Levels rose.", b"Levels\0rose.", "1 NUL byte", id="nul"),
        pytest.param(
            b"Date: Fri, 20 Nov 2026 09:00:00 +0000\r\n", b"", "missing Date header", id="no-date"
        ),
        pytest.param(
            b"From: ",
            b"From: Other <other@example.org>\r\nFrom: ",
            "From header appears 2 times",
            id="two-from",
        ),
        pytest.param(
            b"Subject: Autumn report",
            "Subject: Herbstbericht für Zoë".encode(),
            "Subject header holds raw 8-bit bytes, but the message is not SMTPUTF8",
            id="raw-utf8-subject",
        ),
        pytest.param(
            b'Content-Type: text/plain; charset="utf-8"',
            b"Content-Type: text/plain",
            "part 1 (text/plain) declares no charset",
            id="no-charset",
        ),
        pytest.param(
            b"List-Unsubscribe-Post: List-Unsubscribe=One-Click",
            b"List-Unsubscribe-Post: List-Unsubscribe=Yes",
            "List-Unsubscribe-Post is 'List-Unsubscribe=Yes', not 'List-Unsubscribe=One-Click'",
            id="bad-one-click",
        ),
        pytest.param(
            b", <mailto:news+unsubscribe@example.org>",
            b"",
            "List-Unsubscribe has no <mailto:...> address",
            id="no-mailto",
        ),
        pytest.param(
            b"<https://example.org/u/abc>, ",
            b"",
            "List-Unsubscribe has no <https://...> URL",
            id="no-https",
        ),
        pytest.param(
            b"Date: Fri, 20 Nov 2026 09:00:00 +0000",
            b"Date: next Friday",
            "Date header does not parse",
            id="bad-date",
        ),
        pytest.param(
            b"Message-ID: <2026-11.42@example.org>",
            b"Message-ID: 2026-11.42",
            "Message-ID is not <left@right>",
            id="bad-message-id",
        ),
        pytest.param(
            b"From: Lower Vale Survey <news@example.org>",
            b"From: news@example.org, desk@example.org",
            "From header must hold exactly one address",
            id="two-senders",
        ),
        pytest.param(
            b"Date: Fri, 20 Nov 2026 09:00:00 +0000",
            b"Date:",
            "Date header is empty",
            id="empty-date",
        ),
        pytest.param(
            b"Subject: Autumn report",
            b"Subject: =?utf-8?q?Zo=E9?=",
            "Subject header has an encoded-word that does not decode",
            id="bad-encoded-word",
        ),
        pytest.param(
            b"Subject: Autumn report",
            b"Subject: Autumn\x0breport",
            "Subject header holds control character 0x0B",
            id="control-character",
        ),
        pytest.param(
            b"List-Id: Lower Vale Survey <survey.example.org>",
            b"List-Id: survey",
            "List-Id is not 'name <id.domain>' or '<id.domain>'",
            id="bad-list-id",
        ),
        pytest.param(
            b"MIME-Version: 1.0\r\nContent-Type: multipart",
            b"MIME-Version: 2.0\r\nContent-Type: multipart",
            "MIME-Version is '2.0', not 1.0",
            id="mime-version",
        ),
        pytest.param(
            b'Content-Type: text/html; charset="utf-8"',
            b'Content-Type: text/html; charset="iso-8859-1"',
            "part 2 (text/html) declares charset=iso-8859-1, not utf-8",
            id="latin-1",
        ),
        pytest.param(
            b"Levels rose.",
            b"Levels =FF rose.",
            "part 1 (text/plain) is not valid UTF-8: invalid start byte",
            id="not-utf8",
        ),
        pytest.param(
            b"Levels rose.",
            b"Levels =Z rose.",
            "part 1 (text/plain) has a bad quoted-printable escape",
            id="bad-qp",
        ),
        pytest.param(
            b"Levels rose.",
            f"Levels {BOUNDARY} rose.".encode(),
            f"part 1 (text/plain) holds the boundary '{BOUNDARY}' in its body",
            id="boundary-in-body",
        ),
    ],
)
def test_each_fault_is_flagged(old: bytes, new: bytes, expected: str) -> None:
    problems = check_message(swap(GOOD, old, new), "issue-14.eml")
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"issue-14.eml: {expected}"), problems


def test_8bit_transfer_encoding_is_flagged() -> None:
    for encoding in (b"8bit", b"binary"):
        mutated = GOOD.replace(
            b"Transfer-Encoding: quoted-printable", b"Transfer-Encoding: " + encoding
        )
        problems = check_message(mutated)
        assert problems == [
            f"message: part {n} (text/{kind}) is sent {encoding.decode()}:"
            " use quoted-printable or base64"
            for n, kind in ((1, "plain"), (2, "html"))
        ]


def test_html_before_plain_is_flagged() -> None:
    assert check_message(build(html_first=True)) == [
        "message: first alternative is text/html, not text/plain",
        "message: last alternative is text/plain, not text/html",
    ]


def test_a_single_part_message_is_flagged() -> None:
    message = newsletter()
    message.clear_content()
    message.set_content(TEXT, cte="quoted-printable")
    assert check_message(message.as_bytes()) == [
        "message: top level is text/plain, and no multipart/alternative in it"
    ]


def test_alternatives_inside_multipart_mixed_pass_and_a_broken_attachment_is_flagged() -> None:
    message = newsletter()
    message.add_attachment(bytes(range(256)), maintype="image", subtype="png", filename="a.png")
    raw = message.as_bytes()
    assert message.get_content_type() == "multipart/mixed"
    assert check_message(raw) == []
    broken = swap(raw, b"AAECAwQF", b"AAEC!AwQF")
    assert check_message(broken) == [
        "message: part 2 (image/png) parser defect InvalidBase64CharactersDefect:"
        " base64 encoded sequence had characters not in base64 alphabet"
    ]


def test_a_header_line_that_is_not_a_field_is_flagged() -> None:
    line = b"Subject: Autumn report\r\n"
    problems = check_message(swap(GOOD, line, line + b"Bcc : x@example.net\r\n"))
    assert "message: header line 4 is not a valid field: b'Bcc : x@example.net'" in problems


def test_raw_utf8_headers_pass_only_when_the_message_is_smtputf8() -> None:
    subject = {"Subject": "Herbstbericht für Zoë"}
    assert "Herbstbericht für Zoë".encode() in build(subject, utf8=True)
    assert check_message(build(subject, utf8=True)) == [
        f"message: {name} header holds raw 8-bit bytes, but the message is not SMTPUTF8"
        " (no non-ASCII address in To or the envelope): encode it as RFC 2047 words"
        for name in ("To", "Subject")
    ]
    assert check_message(build({**subject, "To": "Jöhn <jöhn@exämple.de>"}, utf8=True)) == []


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1), st.integers(0, 40), st.binary(max_size=12)), max_size=6))
def test_a_mangled_message_gives_problems_not_exceptions(
    edits: list[tuple[float, int, bytes]],
) -> None:
    raw = bytearray(GOOD)
    for where, cut, insert in edits:
        start = int(where * len(raw))
        raw[start : start + cut] = insert
    problems = check_message(bytes(raw))
    assert all(problem.startswith("message: ") and "\n" not in problem for problem in problems)


def test_check_paths_reads_eml_files_and_maildirs(tmp_path: Path) -> None:
    good = tmp_path / "good.eml"
    good.write_bytes(build())
    maildir = tmp_path / "outbox"
    for folder in ("new", "cur", "tmp"):
        (maildir / folder).mkdir(parents=True)
    (maildir / "cur" / "1.host:2,S").write_bytes(build())
    bad = maildir / "new" / "2.host"
    bad.write_bytes(build({"Date": None}))
    (maildir / "new" / ".hidden").write_bytes(b"not a message")
    (maildir / "tmp" / "3.host").write_bytes(b"not delivered yet")
    assert check_paths([good]) == (1, [])
    assert check_paths([good, maildir]) == (3, [f"{bad}: missing Date header"])


def test_check_paths_flags_a_path_with_no_messages(tmp_path: Path) -> None:
    empty = tmp_path / "outbox"
    (empty / "new").mkdir(parents=True)
    assert check_paths([empty, tmp_path / "gone"]) == (
        0,
        [f"{empty}: holds no messages", f"{tmp_path / 'gone'}: no such file or folder"],
    )


def test_the_command_line_prints_problems_and_a_count(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good, bad = tmp_path / "good.eml", tmp_path / "bad.eml"
    good.write_bytes(build())
    bad.write_bytes(build(html_first=True))
    assert main([str(good)]) == 0
    assert capsys.readouterr().out == "checked: 1 messages, 0 problems\n"
    assert main([str(good), str(bad)]) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"{bad}: first alternative is text/html, not text/plain",
        f"{bad}: last alternative is text/plain, not text/html",
        "checked: 2 messages, 2 problems",
    ]


def test_the_checker_runs_as_a_script(tmp_path: Path) -> None:
    (tmp_path / "bad.eml").write_bytes(build({"Date": None}))
    done = subprocess.run(
        [sys.executable, str(CHECKER), str(tmp_path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 1, done.stderr
    assert done.stdout.splitlines()[-1] == "checked: 1 messages, 1 problems"
