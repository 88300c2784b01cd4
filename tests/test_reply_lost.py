"""A relay that takes a message and never answers it: the reader gets it once in the run."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from typer.testing import Result

from mailer import config
from tests.conftest import EXAMPLE_CSV, EXAMPLE_REPORT, Invoke, store
from tests.smtp_servers import FaultyServer, PipeliningServer, Recorder, start, start_pipelining
from tests.test_send_cli import smtp_env


def send_example(mailer: Invoke, env: dict[str, str], *options: str) -> Result:
    """The example readers imported, then sent the example report through ``env``'s relay."""
    imported = mailer("subscribers", "import", "example", str(EXAMPLE_CSV), "--create-list")
    assert imported.exit_code == 0, imported.output
    return mailer("send", str(EXAMPLE_REPORT), "--list", "example", "--yes", *options, env=env)


SILENT = {"lukasz.nowak@example.net", "jose.alvarez@example.com", "zoe.bronte@example.org"}


class Silent:
    """Keeps each message of SILENT's readers, and the first time never answers it (a content
    filter that hangs); everything else is answered at once."""

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(self, Recorder)
        answer = await Recorder.handle_DATA(self, server, session, envelope)
        [recipient] = envelope.rcpt_tos
        if recipient in SILENT and self.counts()[recipient] == 1:
            await asyncio.Event().wait()  # until the client gives up and closes
        return answer


@dataclass
class SilentServer(Silent, FaultyServer):
    pass


@dataclass
class SilentPipelining(Silent, PipeliningServer):
    pass


@pytest.mark.usefixtures("engine")
@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "one-by-one"])
def test_a_message_whose_reply_never_comes_is_not_sent_again_in_the_run(
    mailer: Invoke, workspace: Path, pipelining: bool
) -> None:
    """Before, the silence was taken for a dropped connection: the message went again at once
    on a new one, then again at each retry (up to [send] max_attempts copies)."""
    handler: Recorder = SilentPipelining() if pipelining else SilentServer()
    controller = start_pipelining(handler) if pipelining else start(handler)  # type: ignore[arg-type]
    env = {**smtp_env(controller.port), "MAILER_SMTP_DATA_TIMEOUT": "0.5",
           "MAILER_SEND_RETRY_DELAY": "0.01"}  # fmt: skip
    try:
        result = send_example(mailer, env)
        assert result.exit_code == 0, result.output
        assert "17 sent, 3 deferred, 0 failed" in result.stdout
        assert set(handler.counts().values()) == {1} and len(handler.counts()) == 20
        database = store(workspace)
        try:
            rows = database.query(
                "SELECT s.email, d.status, d.attempts, d.reply FROM deliveries d"
                " JOIN subscribers s ON s.id = d.subscriber_id WHERE d.status != 'sent'"
            )
        finally:
            database.close()
        assert {row[0] for row in rows} == SILENT
        for _, status, attempts, reply in rows:
            assert (status, attempts) == ("deferred", 1)
            assert reply.startswith("4.4.2 no reply once the message was sent (")
            assert reply.endswith("it may have arrived, so it is not sent again in this run")
        # The editor's retry sends them again: a second copy where the first had arrived.
        retried = mailer("campaigns", "retry", "1", env=env)
        assert retried.exit_code == 0, retried.output
    finally:
        controller.stop()
    counts = handler.counts()
    assert {email: counts[email] for email in SILENT} == dict.fromkeys(SILENT, 2)
    assert sum(counts.values()) == 23


def test_the_wait_for_a_message_s_reply_is_rfc_5321_s_ten_minutes_by_default(
    workspace: Path,
) -> None:
    settings = config.load(workspace, {})
    assert (settings.smtp.timeout, settings.smtp.data_timeout) == (30.0, 600.0)
    changed = config.load(workspace, {"MAILER_SMTP_DATA_TIMEOUT": "120"})
    assert changed.smtp.data_timeout == 120.0


class Garbled:
    """Keeps each message of SILENT's readers, and the first time answers it with a line that
    is not SMTP (a relay's filter gone wrong)."""

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str | bytes:
        assert isinstance(self, Recorder)
        answer = await Recorder.handle_DATA(self, server, session, envelope)
        [recipient] = envelope.rcpt_tos
        if recipient in SILENT and self.counts()[recipient] == 1:
            return b"ok, got it"
        return answer


@dataclass
class GarbledServer(Garbled, FaultyServer):
    pass


@dataclass
class GarbledPipelining(Garbled, PipeliningServer):
    pass


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "one-by-one"])
def test_a_garbled_reply_to_a_sent_message_is_not_sent_again_in_the_run(
    mailer: Invoke, pipelining: bool
) -> None:
    """Before, it was a deferral like any other: sent again at each retry (4 copies)."""
    handler: Recorder = GarbledPipelining() if pipelining else GarbledServer()
    controller = start_pipelining(handler) if pipelining else start(handler)  # type: ignore[arg-type]
    env = {**smtp_env(controller.port), "MAILER_SEND_RETRY_DELAY": "0.01"}
    try:
        result = send_example(mailer, env)
    finally:
        controller.stop()
    assert result.exit_code == 0, result.output
    assert "17 sent, 3 deferred, 0 failed" in result.stdout
    assert set(handler.counts().values()) == {1} and len(handler.counts()) == 20


def test_a_worker_keeps_its_claims_while_it_waits_for_a_reply(mailer: Invoke) -> None:
    """The wait for a reply (data_timeout) outlasts the claims' lease: the worker renews them
    meanwhile. Before, another worker took its batch when the lease ran out and sent it too."""
    handler = SilentServer()
    controller = start(handler)
    env = {**smtp_env(controller.port), "MAILER_SMTP_DATA_TIMEOUT": "3",
           "MAILER_SEND_LEASE_SECONDS": "1"}  # fmt: skip
    try:
        result = send_example(mailer, env, "--workers", "2", "--concurrency", "1")
    finally:
        controller.stop()
    assert result.exit_code == 0, result.output
    assert set(handler.counts().values()) == {1} and len(handler.counts()) == 20
