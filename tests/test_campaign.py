"""The send pipeline against real SMTP servers on loopback, with a real SQLite store."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from mailer.audience import lists, subscriptions
from mailer.config import SmtpSettings
from mailer.db.database import Database
from mailer.errors import InputError, TransportError
from mailer.models import Candidate, Reader, Reply
from mailer.send.campaigns import Campaigns
from mailer.send.engine import Pipeline
from mailer.send.outbox import OutboxTransport
from mailer.send.recipients import Audience
from mailer.send.retry import FailuresInARow, not_connected, unanswered
from mailer.send.smtp import SmtpTransport
from mailer.send.types import Control, Progress, Ready, SendOptions, StopReason
from tests.conftest import store as open_store
from tests.smtp_servers import FaultyServer, Recorder, closed_port, start

pytestmark = pytest.mark.usefixtures("engine")  # each test on SQLite, then PostgreSQL


def build(recipient: Reader) -> tuple[Ready, str]:
    message_id = f"<{recipient.id}.test@example.org>"
    body = (
        f"From: news@example.org\r\nTo: {recipient.email}\r\nSubject: test\r\n"
        f"Message-ID: {message_id}\r\n\r\nHello {recipient.name}\r\n"
    )
    return Ready([body.encode()]), message_id


def store_with(
    tmp_path: Path, count: int, smtputf8: tuple[str, ...] = (), slug: str = "weekly"
) -> tuple[Database, int]:
    store = open_store(tmp_path)  # on the test's engine
    weekly = lists.create(store, slug, "Weekly")
    candidates = [Candidate(f"r{i}@example.org", False, f"Reader {i}") for i in range(count)]
    candidates += [Candidate(e, True, "Intl") for e in smtputf8]
    subscriptions.add(store, weekly, candidates)
    campaign_id = Campaigns(store).create(Audience((weekly,)), "test", "report.md", "# test", {})
    return store, campaign_id


def smtp(port: int, **overrides: object) -> SmtpTransport:
    settings = SmtpSettings(host="127.0.0.1", port=port, security="none", timeout=5)
    for key, value in overrides.items():
        object.__setattr__(settings, key, value)
    return SmtpTransport(settings)


def run(store: Database, campaign_id: int, transport: object, **options: object) -> dict[str, int]:
    log = Campaigns(store).log(campaign_id)
    opts = SendOptions(sender="bounces@example.org", **options)  # type: ignore[arg-type]
    campaign = Pipeline(log, transport, build, opts, log.count())  # type: ignore[arg-type]
    progress = asyncio.run(campaign.run())
    return dict(progress.counts)


def test_every_recipient_gets_exactly_one_copy(tmp_path: Path) -> None:
    store, campaign_id = store_with(tmp_path, 500)
    recorder = Recorder()
    server = start(recorder)
    try:
        counts = run(store, campaign_id, smtp(server.port), concurrency=8)
    finally:
        server.stop()
    assert counts == {"sent": 500, "deferred": 0, "failed": 0, "skipped": 0}
    received = recorder.counts()
    assert len(received) == 500 and set(received.values()) == {1}
    info = Campaigns(store).get(campaign_id)
    assert info.status == "done"
    assert info.counts["sent"] == 500
    assert {r.sender for r in recorder.received} == {"bounces@example.org"}


def test_unreachable_server_is_one_error_and_records_nothing(tmp_path: Path) -> None:
    store, campaign_id = store_with(tmp_path, 3)
    port = closed_port()
    with pytest.raises(TransportError, match=rf"SMTP server 127\.0\.0\.1:{port}: "):
        run(store, campaign_id, smtp(port))
    assert Campaigns(store).get(campaign_id).status == "draft"


def chaos(recipient: str, attempt: int) -> str | None:
    """Deterministic faults by address: some greylisted once, some dead, some dropped once
    (after the message: not sent again in the run)."""
    n = int(hashlib.sha256(recipient.encode()).hexdigest(), 16) % 20
    if n == 0:
        return "550"
    if n == 1 and attempt == 1:
        return "451"
    if n == 2 and attempt <= 2:
        return "421"
    if n == 3 and attempt == 1:
        return "drop"
    if n == 4:
        return "slow"
    if n == 5:
        return "451"  # never accepted: ends deferred after max_attempts
    return None


def test_faults_end_in_recorded_states_that_match_the_server(tmp_path: Path) -> None:
    store, campaign_id = store_with(tmp_path, 2000)
    server_state = FaultyServer(rule=chaos)
    server = start(server_state)
    try:
        counts = run(store, campaign_id, smtp(server.port), concurrency=8, retry_delay=0.01,
                     max_attempts=3, max_consecutive_failures=10_000)  # fmt: skip
    finally:
        server.stop()
    rows = store.query(
        "SELECT s.email, d.status, d.attempts, d.last_code FROM deliveries d"
        " JOIN subscribers s ON s.id = d.subscriber_id WHERE d.campaign_id = ?",
        (campaign_id,),
    )
    received = server_state.counts()
    assert sum(counts.values()) == 2000 == len(rows)
    for email, status, attempts, code in rows:
        action = chaos(email, 1)
        if status == "sent":
            assert received[email] == 1, email
        else:
            assert received[email] == 0, email
        if action == "550":
            assert (status, code) == ("failed", 550)
        elif action == "451" and chaos(email, 2) == "451":
            assert (status, attempts, code) == ("deferred", 3, 451)
        elif action == "drop":  # dropped once its body was sent: it may have arrived
            assert (status, attempts, code) == ("deferred", 1, 451)
        else:
            assert status == "sent", (email, action, status, code)
    bounced = store.query("SELECT COUNT(*) FROM subscribers WHERE status = 'bounced'")
    assert bounced[0][0] == counts["failed"] > 0


def test_smtputf8_recipients(tmp_path: Path) -> None:
    intl = ("jöhn@exämple.de",)
    for offered in (True, False):
        folder = tmp_path / str(offered)
        folder.mkdir()
        store, campaign_id = store_with(folder, 3, intl, slug=f"weekly-{offered}".lower())
        recorder = Recorder()
        server = start(recorder, enable_SMTPUTF8=offered)
        try:
            counts = run(store, campaign_id, smtp(server.port))
        finally:
            server.stop()
        if offered:
            assert counts["sent"] == 4
            assert "jöhn@exämple.de" in recorder.counts()
        else:
            assert (counts["sent"], counts["failed"]) == (3, 1)
            [failure] = Campaigns(store).failures(campaign_id)
            assert failure.email == "jöhn@exämple.de"
            assert "SMTPUTF8" in failure.error


def test_outbox_is_a_maildir(tmp_path: Path) -> None:
    import mailbox

    store, campaign_id = store_with(tmp_path, 5)
    counts = run(store, campaign_id, OutboxTransport(tmp_path / "outbox"))
    assert counts["sent"] == 5
    box = mailbox.Maildir(tmp_path / "outbox", create=False)
    assert sorted(m["To"] for m in box) == [f"r{i}@example.org" for i in range(5)]


def test_resume_sends_only_what_is_not_sent(tmp_path: Path) -> None:
    store, campaign_id = store_with(tmp_path, 50)
    recorder = Recorder()
    server = start(recorder)
    try:
        first = run(store, campaign_id, smtp(server.port), limit=20)
        assert first["sent"] == 20
        assert Campaigns(store).get(campaign_id).status == "paused"
        second = run(store, campaign_id, smtp(server.port))
    finally:
        server.stop()
    assert second["sent"] == 30
    assert set(recorder.counts().values()) == {1} and len(recorder.counts()) == 50
    assert Campaigns(store).get(campaign_id).status == "done"


def test_rate_limit_spaces_messages(tmp_path: Path) -> None:
    import time

    store, campaign_id = store_with(tmp_path, 11)
    start_time = time.monotonic()
    run(store, campaign_id, OutboxTransport(tmp_path / "outbox"), rate=50.0)
    # 11 messages at 50/s need at least 10 intervals of 20 ms.
    assert time.monotonic() - start_time >= 0.2


def test_too_many_failures_in_a_row_pause_the_campaign(tmp_path: Path) -> None:
    store, campaign_id = store_with(tmp_path, 200)
    server_state = FaultyServer(rule=lambda recipient, attempt: "451")
    server = start(server_state)
    try:
        counts = run(store, campaign_id, smtp(server.port), concurrency=2, max_attempts=1,
                     max_consecutive_failures=10)  # fmt: skip
    finally:
        server.stop()
    info = Campaigns(store).get(campaign_id)
    assert info.status == "paused"
    assert info.reason == "paused after 10 failures in a row"
    assert 10 <= counts["deferred"] < 200  # stopped early; the rest stays queued
    assert info.counts["queued"] == 200 - info.counts["deferred"]


def test_retry_sends_the_deferred_again(tmp_path: Path) -> None:
    store, campaign_id = store_with(tmp_path, 30)
    server_state = FaultyServer(
        rule=lambda r, attempt: "451" if r < "r2" and attempt == 1 else None
    )
    server = start(server_state)
    try:
        first = run(store, campaign_id, smtp(server.port), max_attempts=1,
                    max_consecutive_failures=1000)  # fmt: skip
        deferred = first["deferred"]
        assert deferred > 0 and Campaigns(store).get(campaign_id).status == "done"
        log = Campaigns(store).log(campaign_id, ("deferred",))
        opts = SendOptions(sender="bounces@example.org")
        second = asyncio.run(Pipeline(log, smtp(server.port), build, opts, log.count()).run())
    finally:
        server.stop()
    assert second.counts["sent"] == deferred
    assert Campaigns(store).get(campaign_id).counts["sent"] == 30
    assert set(server_state.counts().values()) == {1}


@pytest.mark.parametrize(
    "body",
    [
        b"Subject: dots\r\n\r\n.leading dot\r\n..two\r\nmiddle . dot\r\n.\r\nend",
        b"Subject: bare newlines\n\n.dot after LF\nlast line\n",
    ],
)
def test_data_is_dot_stuffed_and_crlf_on_the_wire(body: bytes) -> None:
    recorder = Recorder()
    server = start(recorder)

    async def send() -> None:
        connection = await smtp(server.port).connect()
        reply = await connection.send("a@example.org", "b@example.org", [body], False)
        await connection.close()
        assert reply.code == 250

    try:
        asyncio.run(send())
    finally:
        server.stop()
    expected = body.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    expected += b"" if expected.endswith(b"\r\n") else b"\r\n"
    assert recorder.received[0].data == expected


def test_an_unexpected_failure_pauses_with_the_reason_and_keeps_what_was_recorded(
    tmp_path: Path,
) -> None:
    store, campaign_id = store_with(tmp_path, 40)
    outbox = tmp_path / "outbox"
    transport = OutboxTransport(outbox)
    written = 0

    class FillingDisk:
        """An outbox whose disk fills up after ten messages."""

        description = "outbox that fills up"

        async def connect(self) -> object:
            connection = await transport.connect()
            send = connection.send

            async def limited(*args: object) -> object:
                nonlocal written
                if written >= 10:
                    raise TransportError(f"outbox {outbox}", "No space left on device")
                written += 1
                return await send(*args)  # type: ignore[arg-type]

            connection.send = limited  # type: ignore[method-assign]
            return connection

    counts = run(store, campaign_id, FillingDisk(), concurrency=1)
    info = Campaigns(store).get(campaign_id)
    assert info.status == "paused"
    assert "No space left on device" in info.reason
    assert counts["sent"] == info.counts["sent"] == 10
    assert info.counts["queued"] == 30


class RefusesSender(Recorder):
    """Refuses every MAIL FROM, as a relay does for an unknown sender domain."""

    async def handle_MAIL(
        self, server: object, session: object, envelope: object, address: str, options: list[str]
    ) -> str:
        return "553 5.1.8 <bounces@example.org>: Sender address rejected: Domain not found"


def test_a_refused_sender_fails_no_reader_and_bounces_no_one(tmp_path: Path) -> None:
    store, campaign_id = store_with(tmp_path, 30)
    server = start(RefusesSender())
    try:
        counts = run(store, campaign_id, smtp(server.port), concurrency=1, max_attempts=1,
                     max_consecutive_failures=10)  # fmt: skip
    finally:
        server.stop()
    info = Campaigns(store).get(campaign_id)
    assert counts["failed"] == info.counts["failed"] == 0
    assert info.status == "paused" and info.reason == "paused after 10 failures in a row"
    assert info.counts["deferred"] == 10 and info.counts["queued"] == 20
    bounced = store.query("SELECT COUNT(*) FROM subscribers WHERE status = 'bounced'")
    assert bounced[0][0] == 0
    assert Campaigns(store).log(campaign_id).count() == 30  # resume would try all of them again


def test_a_failed_write_keeps_the_batch_for_the_next_one(tmp_path: Path) -> None:
    from mailer.errors import StoreError

    store, campaign_id = store_with(tmp_path, 60)
    log = Campaigns(store).log(campaign_id)
    record, failures = log.record, [1]  # the first commit finds the database locked

    def flaky_record(results: object) -> None:
        if failures[0]:
            failures[0] -= 1
            raise StoreError(tmp_path / "db.sqlite", "locked by another process")
        record(results)  # type: ignore[arg-type]

    log.record = flaky_record  # type: ignore[method-assign]
    recorder = Recorder()
    server = start(recorder)
    try:
        opts = SendOptions(sender="bounces@example.org", concurrency=2)
        progress = asyncio.run(Pipeline(log, smtp(server.port), build, opts, 60).run())
    finally:
        server.stop()
    info = Campaigns(store).get(campaign_id)
    sent_on_the_wire = set(recorder.counts())
    recorded_sent = {
        row[0] for row in store.query(
            "SELECT s.email FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id"
            " WHERE d.status = 'sent'"
        )
    }  # fmt: skip
    assert recorded_sent == sent_on_the_wire  # nothing the server accepted is left unrecorded
    assert info.counts["sent"] == progress.counts["sent"] > 0
    assert info.status == "paused" and "locked by another process" in info.reason


def test_progress_counts_match_the_database_after_a_stop_with_retries_pending(
    tmp_path: Path,
) -> None:
    store, campaign_id = store_with(tmp_path, 40)
    server = start(FaultyServer(rule=lambda recipient, attempt: "451"))
    try:
        log = Campaigns(store).log(campaign_id)
        opts = SendOptions(sender="bounces@example.org", concurrency=2, max_attempts=3,
                           retry_delay=0.001, max_consecutive_failures=15)  # fmt: skip
        progress = asyncio.run(Pipeline(log, smtp(server.port), build, opts, 40).run())
    finally:
        server.stop()
    info = Campaigns(store).get(campaign_id)
    assert info.status == "paused"
    assert progress.counts["deferred"] == info.counts["deferred"]  # those with a retry to
    assert info.counts["queued"] > 0  # come are queued again, counted as not done
    assert progress.done == 40 - info.counts["queued"]


def test_stop_while_connecting_records_nothing(tmp_path: Path) -> None:
    import socket
    import time

    store, campaign_id = store_with(tmp_path, 5)
    with socket.socket() as silent:  # accepts connections, never greets
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        log = Campaigns(store).log(campaign_id)
        transport = smtp(silent.getsockname()[1], timeout=30)
        campaign = Pipeline(log, transport, build, SendOptions(sender="b@example.org"), 5)

        async def main() -> object:
            asyncio.get_running_loop().call_later(0.1, campaign.stop)
            return await campaign.run()

        started = time.monotonic()
        progress = asyncio.run(main())
    assert time.monotonic() - started < 10  # not the 30 s connect timeout
    assert str(progress.stop) == "stopped by the user"  # type: ignore[attr-defined]
    assert Campaigns(store).get(campaign_id).status == "draft"


def test_a_message_that_cannot_be_built_fails_that_reader_only(tmp_path: Path) -> None:
    store, campaign_id = store_with(tmp_path, 30)

    def build_or_fail(recipient: Reader) -> tuple[Ready, str]:
        if recipient.email == "r7@example.org":
            raise InputError("report.md:3: 'city' is undefined")
        return build(recipient)

    recorder = Recorder()
    server = start(recorder)
    try:
        log = Campaigns(store).log(campaign_id)
        options = SendOptions(sender="bounces@example.org", concurrency=4)
        progress = asyncio.run(Pipeline(log, smtp(server.port), build_or_fail, options, 30).run())
    finally:
        server.stop()
    assert progress.counts == {"sent": 29, "deferred": 0, "failed": 1, "skipped": 0}
    assert "r7@example.org" not in recorder.counts() and len(recorder.counts()) == 29
    code, text = store.query_one(
        "SELECT d.last_code, d.last_error FROM deliveries d JOIN subscribers s"
        " ON s.id = d.subscriber_id WHERE s.email = 'r7@example.org'"
    ) or (None, None)
    assert code == 554 and "not rendered: report.md:3: 'city' is undefined" in text
    assert Campaigns(store).get(campaign_id).status == "done"


def test_a_stop_puts_readers_waiting_for_a_retry_back_in_the_queue(tmp_path: Path) -> None:
    """`mailer serve` stopping (or Ctrl-C) while greylisted readers wait for their retry: the
    campaign is paused with them queued, not done with them deferred for good, and the next
    run sends each of them once."""
    store, campaign_id = store_with(tmp_path, 30)
    grey = {f"r{i}@example.org" for i in (3, 14, 25)}
    server_state = FaultyServer(
        rule=lambda r, attempt: "451" if r in grey and attempt == 1 else None
    )
    server = start(server_state)
    control = Control()

    def stop_once_only_retries_wait(progress: Progress) -> None:
        if progress.counts["sent"] == 27 and progress.waiting_retry == 3:
            control.shutdown()  # as `mailer serve` does on SIGTERM

    try:
        log = Campaigns(store).log(campaign_id)
        opts = SendOptions(sender="bounces@example.org", retry_delay=3600.0)
        first = asyncio.run(Pipeline(log, smtp(server.port), build, opts, 30,
                                     stop_once_only_retries_wait, control).run())  # fmt: skip
        info = Campaigns(store).get(campaign_id)
        assert first.stop is not None and first.stop.reason is StopReason.SHUTDOWN
        assert (info.status, info.counts["queued"], info.counts["deferred"]) == ("paused", 3, 0)
        assert first.counts["deferred"] == 0  # as the database says
        again = run(store, campaign_id, smtp(server.port))
    finally:
        server.stop()
    assert again["sent"] == 3 and Campaigns(store).get(campaign_id).status == "done"
    assert server_state.counts() == {f"r{i}@example.org": 1 for i in range(30)}


def test_a_relay_gone_mid_send_pauses_as_unreachable(tmp_path: Path) -> None:
    """Every failure in a row a connection lost or never made: the relay is down, which the
    scheduler of `mailer serve` waits out (a refusing relay pauses as failures in a row)."""
    store, campaign_id = store_with(tmp_path, 200)
    server = start(Recorder())

    def down_after_ten(progress: Progress) -> None:
        if progress.counts["sent"] >= 10 and server.loop.is_running():
            server.stop()  # the relay goes away, its open connections with it

    log = Campaigns(store).log(campaign_id)
    opts = SendOptions(sender="bounces@example.org", concurrency=2, max_attempts=1,
                       max_consecutive_failures=5)  # fmt: skip
    progress = asyncio.run(Pipeline(log, smtp(server.port), build, opts, 200,
                                    down_after_ten).run())  # fmt: skip
    info = Campaigns(store).get(campaign_id)
    assert progress.stop is not None and progress.stop.reason is StopReason.UNREACHABLE
    assert info.status == "paused"
    assert info.reason.startswith("the SMTP server cannot be reached: paused after")
    assert info.counts["queued"] > 0


def test_the_deferral_that_trips_a_pause_is_queued_again_not_left_deferred(
    tmp_path: Path,
) -> None:
    """The reader whose 4xx makes the failures in a row that pause the run (or any answered
    after a stop) had a retry to come: queued again, sent by the resume, never left behind."""
    store, campaign_id = store_with(tmp_path, 30)
    state = FaultyServer(
        rule=lambda r, attempt: "451" if r == "r0@example.org" and attempt == 1 else None
    )
    server = start(state)
    try:
        first = run(store, campaign_id, smtp(server.port), concurrency=1, retry_delay=3600.0,
                    max_consecutive_failures=1)  # fmt: skip
        status = store.query_one(
            "SELECT d.status, d.attempts FROM deliveries d JOIN subscribers s ON s.id ="
            " d.subscriber_id WHERE s.email = 'r0@example.org'"
        )
        assert status is not None and (status[0], status[1]) == ("queued", 1)
        assert first["deferred"] == 0 and Campaigns(store).get(campaign_id).status == "paused"
        again = run(store, campaign_id, smtp(server.port))
    finally:
        server.stop()
    assert again["sent"] == 30 and state.counts() == {f"r{i}@example.org": 1 for i in range(30)}


def test_a_reply_lost_after_the_whole_message_is_a_connection_lost_too() -> None:
    failures = FailuresInARow(3)
    assert failures.failure(unanswered("connection lost")) is None
    assert failures.failure(not_connected("refused")) is None
    stop = failures.failure(not_connected("refused"))
    assert stop is not None and stop.reason is StopReason.UNREACHABLE
    swallowing = FailuresInARow(2)  # a relay that takes each message and never answers
    swallowing.failure(unanswered("connection lost"))
    stop = swallowing.failure(unanswered("connection lost"))
    assert stop is not None and stop.reason is StopReason.FAILURES
    refusing = FailuresInARow(2)
    refusing.failure(not_connected("refused"))
    stop = refusing.failure(Reply(451, "4.7.1 greylisted", "rcpt"))  # a relay that answers
    assert stop is not None and stop.reason is StopReason.FAILURES
