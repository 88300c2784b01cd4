"""SMTP PIPELINING (RFC 2920): one write per envelope, the same outcomes as command by command."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from mailer.audience import lists, subscriptions
from mailer.config import SmtpSettings
from mailer.db.sqlite import SqliteDatabase as Database
from mailer.errors import ConnectionLost
from mailer.models import Candidate, Reader, Reply
from mailer.send import retry
from mailer.send.campaigns import Campaigns
from mailer.send.engine import Pipeline
from mailer.send.recipients import Audience
from mailer.send.smtp import SmtpConnection, SmtpTransport
from mailer.send.types import Ready, SendOptions
from tests.smtp_servers import (
    PipeliningController,
    PipeliningServer,
    Recorder,
    WireProxy,
    server_tls,
    start,
    start_pipelining,
)

SENDER = "news@example.org"


def transport(port: int) -> SmtpTransport:
    return SmtpTransport(SmtpSettings(host="127.0.0.1", port=port, security="none", timeout=5))


def body(n: int) -> bytes:
    return f"From: {SENDER}\r\nSubject: message {n}\r\n\r\nHello {n}\r\n.dot\r\n".encode()


def envelope(recipient: str) -> bytes:
    return f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<{recipient}>\r\nDATA\r\n".encode()


async def exchange(
    port: int, recipients: list[str], pipelining: bool | None = None
) -> tuple[list[Reply], WireProxy, bool]:
    """Sends message n to recipients[n] over one connection, through a recording proxy;
    ``pipelining`` False forces today's path on a server that offers PIPELINING."""
    proxy = WireProxy(port)
    connection = await transport(await proxy.start()).connect()
    offered = connection.pipelining
    if pipelining is not None:
        connection.pipelining = pipelining
    try:
        replies = [
            await connection.send(SENDER, recipient, [body(n)], False)
            for n, recipient in enumerate(recipients)
        ]
    finally:
        await connection.close()
        await proxy.stop()
    return replies, proxy, offered


def client_turns(proxy: WireProxy, connection: int = 0) -> list[bytes]:
    return [data for side, data in proxy.turns(connection) if side == "client"]


def test_with_pipelining_mail_rcpt_and_data_go_in_one_write() -> None:
    handler = PipeliningServer()
    server = start_pipelining(handler)
    recipients = [f"r{n}@example.org" for n in range(3)]
    try:
        replies, proxy, offered = asyncio.run(exchange(server.port, recipients))
    finally:
        server.stop()
    assert offered
    assert [r.code for r in replies] == [250, 250, 250]
    assert [(r.recipient, r.data) for r in handler.received] == [
        (to, body(n).replace(b"\r\n..", b"\r\n.")) for n, to in enumerate(recipients)
    ]
    turns = proxy.turns()
    groups = [i for i, (side, data) in enumerate(turns) if b"MAIL FROM" in data]
    # One client turn per envelope holds the three commands, nothing else, before any reply;
    # the server's next turn answers all three; then the body; then its reply: two round trips.
    assert [turns[i] for i in groups] == [("client", envelope(to)) for to in recipients]
    for i in groups:
        answered = turns[i + 1][1].split(b"\r\n")
        assert [line[:3] for line in answered if line] == [b"250", b"250", b"354"]
        assert turns[i + 2][0] == "client" and turns[i + 2][1].endswith(b"\r\n.\r\n")
        assert turns[i + 3][0] == "server" and turns[i + 3][1].startswith(b"250 ")


def test_a_server_without_pipelining_gets_one_command_per_round_trip() -> None:
    recorder = Recorder()
    server = start(recorder)
    try:
        replies, proxy, offered = asyncio.run(exchange(server.port, ["a@example.org"]))
    finally:
        server.stop()
    assert not offered
    assert [r.code for r in replies] == [250]
    assert [r.recipient for r in recorder.received] == ["a@example.org"]
    turns = proxy.turns()
    start_at = next(i for i, (_, data) in enumerate(turns) if data.startswith(b"MAIL FROM"))
    sides = [side for side, _ in turns[start_at : start_at + 8]]
    assert sides == ["client", "server"] * 4
    commands = [data for side, data in turns[start_at : start_at + 6] if side == "client"]
    assert commands == envelope("a@example.org").splitlines(keepends=True)


@pytest.mark.parametrize(
    ("action", "refusal", "verdict"),
    [
        ("550", Reply(550, "5.1.1 no such user here", "rcpt"), retry.Judgement("failed", True)),
        (
            "450",
            Reply(450, "4.2.2 mailbox full, try again later", "rcpt"),
            retry.Judgement("deferred"),
        ),
    ],
)
def test_a_refused_rcpt_sends_no_body_and_the_connection_goes_on(
    action: str, refusal: Reply, verdict: retry.Judgement
) -> None:
    """The pipelined DATA is answered 554 (no valid recipients) and must be read: the refusal
    is the RCPT's, exactly as command by command, then RSET, and the next message goes out."""
    outcomes = {}
    for pipelining in (True, False):
        handler = PipeliningServer(
            rule=lambda to, attempt: action if to.startswith("gone") else None
        )
        server = start_pipelining(handler)
        recipients = ["a@example.org", "gone@example.org", "b@example.org"]
        try:
            replies, proxy, _ = asyncio.run(exchange(server.port, recipients, pipelining))
        finally:
            server.stop()
        outcomes[pipelining] = replies
        assert [r.recipient for r in handler.received] == ["a@example.org", "b@example.org"]
        assert len(proxy.connections) == 1  # the same connection carried the third message
        sent = b"".join(client_turns(proxy))
        assert b"message 1" not in sent and b"RSET\r\n" in sent
    assert outcomes[True] == outcomes[False]
    assert outcomes[True][1] == refusal and retry.judge(refusal) == verdict
    assert [r.code for r in outcomes[True]] == [250, refusal.code, 250]


def test_the_pipelined_data_refusal_is_read_before_the_rset() -> None:
    handler = PipeliningServer(rule=lambda to, attempt: "550" if to.startswith("gone") else None)
    server = start_pipelining(handler)
    try:
        replies, proxy, _ = asyncio.run(
            exchange(server.port, ["gone@example.org", "b@example.org"])
        )
    finally:
        server.stop()
    turns = proxy.turns()
    group = turns.index(("client", envelope("gone@example.org")))
    answered = [line[:3] for line in turns[group + 1][1].split(b"\r\n") if line]
    assert answered == [b"250", b"550", b"554"]
    assert turns[group + 2] == ("client", b"RSET\r\n")
    assert [r.code for r in replies] == [550, 250]


def test_a_data_that_says_354_after_a_refused_rcpt_gets_a_lone_dot() -> None:
    """RFC 2920 section 3.1: the DATA reply is checked even when no RCPT was accepted; a 354
    gets a single ".", so the server ends an empty transaction with nobody to deliver to."""
    handler = PipeliningServer(
        rule=lambda to, attempt: "550" if to.startswith("gone") else None, no_recipients="354"
    )
    server = start_pipelining(handler)
    try:
        replies, proxy, _ = asyncio.run(
            exchange(server.port, ["gone@example.org", "b@example.org"])
        )
    finally:
        server.stop()
    assert replies[0] == Reply(550, "5.1.1 no such user here", "rcpt")
    assert replies[1].code == 250
    assert handler.unwanted == []
    assert [r.recipient for r in handler.received] == ["b@example.org"]
    turns = client_turns(proxy)
    group = turns.index(envelope("gone@example.org"))
    assert turns[group + 1 : group + 3] == [b".\r\n", b"RSET\r\n"]


def build(reader: Reader) -> tuple[Ready, str]:
    message_id = f"<{reader.id}.test@example.org>"
    text = f"From: {SENDER}\r\nTo: {reader.email}\r\nMessage-ID: {message_id}\r\n\r\nHi\r\n"
    return Ready([text.encode()]), message_id


def campaign(tmp_path: Path, count: int) -> tuple[Database, int]:
    store = Database(tmp_path / "db.sqlite")
    weekly = lists.create(store, "weekly", "Weekly")
    readers = [Candidate(f"r{i}@example.org", False, f"Reader {i}") for i in range(count)]
    subscriptions.add(store, weekly, readers)
    return store, Campaigns(store).create(Audience((weekly,)), "test", "r.md", "# test", {})


def recorded(store: Database, campaign_id: int) -> list[tuple[str, str, int, int]]:
    return store.connection.execute(
        "SELECT s.email, d.status, d.attempts, d.last_code FROM deliveries d"
        " JOIN subscribers s ON s.id = d.subscriber_id WHERE d.campaign_id = ? ORDER BY s.email",
        (campaign_id,),
    ).fetchall()


def test_a_drop_mid_pipeline_is_retried_on_a_new_connection_and_sent_once(
    tmp_path: Path,
) -> None:
    store, campaign_id = campaign(tmp_path, 5)
    handler = PipeliningServer(drop_mail={2})  # the second envelope: no reply at all, then EOF
    server = start_pipelining(handler)

    async def send() -> WireProxy:
        proxy = WireProxy(server.port)
        port = await proxy.start()
        log = Campaigns(store).log(campaign_id)
        options = SendOptions(sender=SENDER, concurrency=1)
        await Pipeline(log, transport(port), build, options, log.count()).run()
        await proxy.stop()
        return proxy

    try:
        proxy = asyncio.run(send())
    finally:
        server.stop()
    assert recorded(store, campaign_id) == [(f"r{i}@example.org", "sent", 1, 250) for i in range(5)]
    assert handler.counts() == {f"r{i}@example.org": 1 for i in range(5)}
    assert handler.mails == 6 and len(proxy.connections) == 2
    # The first connection ends with the whole second envelope written and nothing answered.
    dropped = "r1@example.org"
    assert proxy.turns(0)[-1] == ("client", envelope(dropped))
    assert client_turns(proxy, 1)[1] == envelope(dropped)  # [0] is EHLO


def chaos(recipient: str, attempt: int) -> str | None:
    """Faults by address: dead, greylisted once, full once, 421 twice, dropped after the body."""
    faults = {0: "550", 1: "451" if attempt == 1 else None, 2: "450" if attempt == 1 else None}
    faults |= {3: "421" if attempt <= 2 else None, 4: "drop" if attempt == 1 else None}
    return faults.get(int(recipient.split("@")[0][1:]) % 10)


class Toggled:
    """An SmtpTransport whose connections pipeline only when ``pipelining`` says so."""

    def __init__(self, port: int, pipelining: bool) -> None:
        self.inner, self.pipelining = transport(port), pipelining

    @property
    def description(self) -> str:
        return self.inner.description

    async def connect(self) -> SmtpConnection:
        connection = await self.inner.connect()
        connection.pipelining = connection.pipelining and self.pipelining
        return connection


def test_every_fault_ends_in_the_state_today_s_path_records(tmp_path: Path) -> None:
    results = {}
    for pipelining in (True, False):
        store, campaign_id = campaign(tmp_path / str(pipelining), 200)
        handler = PipeliningServer(rule=chaos)
        server = start_pipelining(handler)
        try:
            log = Campaigns(store).log(campaign_id)
            options = SendOptions(sender=SENDER, concurrency=4, retry_delay=0.01,
                                  max_attempts=3, max_consecutive_failures=10_000)  # fmt: skip
            smtp = Toggled(server.port, pipelining)
            asyncio.run(Pipeline(log, smtp, build, options, log.count()).run())
        finally:
            server.stop()
        # A reader dropped just after a 421 closed its connection loses that connection too:
        # "lost twice", one attempt more, on either path; which reader that is depends on timing.
        rows = recorded(store, campaign_id)
        results[pipelining] = (
            [row if chaos(row[0], 1) != "drop" else row[:2] + row[3:] for row in rows],
            handler.counts(),
        )
        # Dropped once the body was sent: it may have arrived, so it is deferred, not sent again.
        dropped = {row[0] for row in rows if chaos(row[0], 1) == "drop"}
        assert {status for email, status, _, _ in rows if email in dropped} == {"deferred"}
        assert not dropped & set(handler.counts())
        if pipelining:
            assert {status for _, status, _, _ in rows} == {"sent", "failed", "deferred"}
            assert {attempts for _, _, attempts, _ in rows} == {1, 2, 3}
            assert set(handler.counts().values()) == {1}
    assert results[True] == results[False]


@pytest.mark.parametrize("pipelining", [True, False])
def test_a_421_ends_the_connection_on_either_path(pipelining: bool) -> None:
    """aiosmtplib closes the connection on a 421 to any command; the pipelined path does too,
    so the next message goes out on a new connection, as it does command by command."""
    server = start_pipelining(PipeliningServer(rule=lambda to, attempt: "421"))

    async def send() -> tuple[Reply, bool]:
        connection = await transport(server.port).connect()
        connection.pipelining = pipelining
        reply = await connection.send(SENDER, "a@example.org", [body(0)], False)
        connected = connection.client.is_connected
        with pytest.raises(ConnectionLost):
            await connection.send(SENDER, "b@example.org", [body(1)], False)
        await connection.close()
        return reply, connected

    try:
        reply, connected = asyncio.run(send())
    finally:
        server.stop()
    assert reply == Reply(421, "4.7.0 try again later, closing connection", "rcpt")
    assert not connected


def test_a_server_that_goes_silent_mid_pipeline_times_out_as_a_lost_connection() -> None:
    server = start_pipelining(PipeliningServer(rule=lambda to, attempt: "silent"))

    async def send() -> bool:
        settings = SmtpSettings(host="127.0.0.1", port=server.port, security="none", timeout=0.5)
        connection = await SmtpTransport(settings).connect()
        assert connection.pipelining
        with pytest.raises(ConnectionLost, match=r"[Tt]imed out"):
            await connection.send(SENDER, "a@example.org", [body(0)], False)
        return connection.client.is_connected

    try:
        still_connected = asyncio.run(asyncio.wait_for(send(), 10))
    finally:
        server.stop()
    assert not still_connected  # closed: a late reply cannot be read as the next one's


def test_pipelining_over_starttls(tmp_path: Path) -> None:
    """Over TLS, replies that arrive as several records in one read all reach the reader."""
    context = server_tls(tmp_path)
    handler = PipeliningServer(rule=lambda to, attempt: "550" if to.startswith("gone") else None)
    server = PipeliningController(handler, tls_context=context)
    server.start()
    settings = SmtpSettings(host="127.0.0.1", port=server.port, security="starttls",
                            verify_tls=False, timeout=5)  # fmt: skip

    async def send() -> tuple[list[Reply], bool, bool]:
        connection = await SmtpTransport(settings).connect()
        recipients = ["a@example.org", "gone@example.org", "b@example.org"]
        replies = [await connection.send(SENDER, to, [body(0)], False) for to in recipients]
        secure = connection.client.get_transport_info("sslcontext") is not None
        await connection.close()
        return replies, connection.pipelining, secure

    try:
        replies, pipelined, secure = asyncio.run(send())
    finally:
        server.stop()
    assert pipelined and secure
    assert [r.code for r in replies] == [250, 550, 250]
    assert [r.recipient for r in handler.received] == ["a@example.org", "b@example.org"]
