"""A server's reply text that is not UTF-8, or holds control characters, is stored and shown."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from mailer.models import Reply, heard
from tests.conftest import EXAMPLE_CSV, EXAMPLE_REPORT, Invoke, store
from tests.smtp_servers import (
    LoopbackController,
    PipeliningServer,
    Recorder,
    start,
    start_pipelining,
)
from tests.test_send_cli import smtp_env

pytestmark = pytest.mark.usefixtures("engine")

# What a relay with a Latin-1 locale, or a careless one, may answer: bytes that are not UTF-8
# (aiosmtplib keeps them as lone surrogates), a NUL and an escape.
QUEUED = b"250 2.0.0 Ok: mis en file d'attente \xe0 14h \x00\x1b[31mqueued"
UNKNOWN = b"550 5.1.1 Empf\xe4nger unbekannt"
REFUSED = "lukasz.nowak@example.net"


class Latin:
    """Answers DATA with QUEUED, and REFUSED's RCPT with UNKNOWN, as raw bytes (aiosmtpd
    writes bytes as they are)."""

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str | bytes:
        if address == REFUSED:
            return UNKNOWN
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> bytes:
        await Recorder.handle_DATA(self, server, session, envelope)  # type: ignore[arg-type]
        return QUEUED


@dataclass
class LatinRecorder(Latin, Recorder):
    pass


@dataclass
class LatinPipelining(Latin, PipeliningServer):
    pass


def serve(pipelining: bool) -> tuple[LoopbackController, Recorder]:
    if pipelining:
        handler: Recorder = LatinPipelining()
        return start_pipelining(handler), handler  # type: ignore[arg-type]
    handler = LatinRecorder()
    return start(handler), handler


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "one-by-one"])
def test_replies_that_are_not_utf8_are_recorded_and_the_campaign_ends(
    mailer: Invoke, workspace: Path, pipelining: bool
) -> None:
    """Before, recording such a reply failed: the campaign paused with every result of the
    batch unrecorded, to be sent again on resume, where the same reply paused it again."""
    controller, recorder = serve(pipelining)
    try:
        imported = mailer("subscribers", "import", "example", str(EXAMPLE_CSV), "--create-list")
        assert imported.exit_code == 0, imported.output
        env = smtp_env(controller.port)
        result = mailer("send", str(EXAMPLE_REPORT), "--list", "example", "--yes", env=env)
    finally:
        controller.stop()
    assert result.exit_code == 0, result.output
    assert "19 sent, 0 deferred, 1 failed, 0 skipped" in result.stdout
    received = recorder.counts()
    assert len(received) == 19 and set(received.values()) == {1}
    shown = mailer("campaigns", "show", "1").stdout
    assert "status:   done" in shown, shown
    database = store(workspace)
    try:
        rows = database.query(
            "SELECT s.email, d.status, d.reply FROM deliveries d"
            " JOIN subscribers s ON s.id = d.subscriber_id"
        )
    finally:
        database.close()
    replies = {email: (status, reply) for email, status, reply in rows}
    assert replies.pop(REFUSED) == ("failed", "5.1.1 Empf\ufffdnger unbekannt")
    assert set(replies.values()) == {
        ("sent", "2.0.0 Ok: mis en file d'attente \ufffd 14h [31mqueued")
    }


def test_a_reply_keeps_its_printable_text_and_its_line_breaks() -> None:
    assert Reply(250, "2.0.0 Ok").text == "2.0.0 Ok"
    assert Reply(550, "5.1.1 first line\n5.1.1 second\tline").text == (
        "5.1.1 first line\n5.1.1 second\tline"
    )
    assert Reply(451, "4.3.0 caf\udce9\r\n").text == "4.3.0 caf\ufffd\n"
    assert Reply(550, "5.1.1 first\n5.1.1 second").line == "550 5.1.1 first 5.1.1 second"
    assert heard("lone \ud800 surrogate, caf\udce9") == "lone \ufffd surrogate, caf\ufffd"
    assert heard("o\x00dd@example.org", keep_apart=True) == "o\ufffddd@example.org"
    assert heard("Zo\u00eb \u2014 ok") == "Zo\u00eb \u2014 ok"
    assert heard("csi \x9b2J, nel \x85, \u202eright to left\u202c") == "csi 2J, nel , right to left"


def test_a_greeting_that_refuses_in_latin1_is_one_printable_line(
    mailer: Invoke, closed_greeting: int
) -> None:
    """Before, the line showed aiosmtplib's tuple, the escape sequence in it as it came."""
    imported = mailer("subscribers", "import", "example", str(EXAMPLE_CSV), "--create-list")
    assert imported.exit_code == 0, imported.output
    env = smtp_env(closed_greeting)
    result = mailer("send", str(EXAMPLE_REPORT), "--list", "example", "--yes", env=env)
    assert result.exit_code == 1, result.output
    [line] = result.stderr.strip().splitlines()
    assert line == (
        f"error: SMTP server 127.0.0.1:{closed_greeting}: the server answered 554 5.7.1"
        " Zugriff verweigert f\ufffdr Sie [2J"
    )
    assert "no campaigns yet" in mailer("campaigns", "ls").stderr


@pytest.fixture
def closed_greeting() -> Iterator[int]:
    """A server on loopback that greets each connection with a refusal in Latin-1, then
    closes it."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    done = threading.Event()

    def serve() -> None:
        while True:
            connection, _ = listener.accept()
            with connection:
                if done.is_set():
                    return
                with contextlib.suppress(OSError):  # the client may be gone already
                    connection.sendall(b"554 5.7.1 Zugriff verweigert f\xfcr Sie \x1b[2J\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield port
    done.set()
    socket.create_connection(("127.0.0.1", port)).close()  # wakes the accept to end
    thread.join(timeout=20)
    listener.close()


@dataclass
class Refusing(Recorder):
    """Refuses every recipient with a reply of two lines."""

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        return "550-5.1.1 first line\r\n550 5.1.1 second \x1b[2Jline"


def test_a_refusal_of_several_lines_is_one_error_line(mailer: Invoke) -> None:
    """A double opt-in list's confirmation, refused with a reply of two lines."""
    controller = start(Refusing())
    try:
        assert mailer("lists", "create", "letters", "--double-opt-in").exit_code == 0
        env = smtp_env(controller.port)
        result = mailer("subscribers", "add", "letters", "ada@example.org", env=env)
    finally:
        controller.stop()
    assert result.exit_code == 1, result.output
    [line] = result.stderr.strip().splitlines()
    assert line.endswith(
        "confirmation to ada@example.org refused: 550 5.1.1 first line 5.1.1 second [2Jline"
    )
