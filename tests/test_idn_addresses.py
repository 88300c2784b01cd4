"""A reader on an internationalised domain is written to at that domain: IDNA 2008 A-labels."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailer.compose.mime import ascii_address
from tests.conftest import EXAMPLE_REPORT
from tests.smtp_servers import LoopbackController, Recorder
from tests.test_send_cli import cli, smtp_env

pytestmark = pytest.mark.usefixtures("engine")

# Python's idna codec (IDNA 2003) maps sharp s to ss and a final sigma to a sigma, and drops
# joiners: other domains than the reader's.
CASES = {
    "anna@straße.de": "anna@xn--strae-oqa.de",
    "nikos@ελληνικός.gr": "nikos@xn--qxaegecap6byf.gr",  # its final sigma kept
    "jo@bücher.example": "jo@xn--bcher-kva.example",
}


def test_a_labels_follow_idna_2008() -> None:
    assert {ascii_address(a) for a in CASES} == set(CASES.values())
    assert ascii_address("jöhn@exämple.de") == "jöhn@exämple.de"  # SMTPUTF8 carries it whole


def test_headers_and_envelope_name_the_readers_own_domain(
    tmp_path: Path, smtp_server: tuple[LoopbackController, Recorder]
) -> None:
    controller, recorder = smtp_server
    readers = tmp_path / "readers.csv"
    readers.write_text("email\n" + "".join(f"{a}\n" for a in CASES), encoding="utf-8")
    cli(tmp_path, "subscribers", "import", "idn", str(readers), "--create-list")
    cli(tmp_path, "send", str(EXAMPLE_REPORT), "--list", "idn", "--yes",
        env=smtp_env(controller.port))  # fmt: skip
    assert sorted(r.recipient for r in recorder.received) == sorted(CASES.values())
    for received in recorder.received:
        assert received.recipient in str(received.message["To"])


def test_the_outbox_writes_the_same_ascii_envelope(tmp_path: Path) -> None:
    readers = tmp_path / "readers.csv"
    readers.write_text("email\nanna@straße.de\n", encoding="utf-8")
    cli(tmp_path, "subscribers", "import", "idn", str(readers), "--create-list")
    cli(tmp_path, "send", str(EXAMPLE_REPORT), "--list", "idn", "--yes")
    [written] = (tmp_path / "outbox" / "new").iterdir()
    head = written.read_bytes().split(b"\r\n\r\n", 1)[0]
    assert (
        b"Delivered-To: anna@xn--strae-oqa.de\r\n" in head and b"To: anna@xn--strae-oqa.de" in head
    )
    assert head.isascii()
