"""The sending service: the campaign row exists and its lock is held before the first message
is built; a run stopped before the server answers leaves nothing; stops are typed."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import replace
from pathlib import Path

import pytest

from mailer import config
from mailer.audience import lists, subscriptions
from mailer.compose.report import load_report
from mailer.db.opening import open_database
from mailer.errors import InputError
from mailer.models import Candidate, Reader
from mailer.send import service
from mailer.send.campaigns import Campaigns
from mailer.send.messages import MessageFactory
from mailer.send.recipients import Audience, audience
from mailer.send.service import Overrides, Session
from mailer.send.types import Stop, StopReason
from tests.conftest import EXAMPLE_REPORT, PUBLICATION, engine_environ

pytestmark = pytest.mark.usefixtures("engine")  # each test on SQLite, then PostgreSQL


def workspace_with(folder: Path, readers: int, env: dict[str, str] | None = None) -> Session:
    settings = config.load(folder, {**engine_environ(), **(env or {})})
    database = open_database(settings)
    weekly = lists.create(database, "weekly", "Weekly")
    people = [Candidate(f"r{i}@example.org", False, f"Reader {i}") for i in range(readers)]
    subscriptions.add(database, weekly, people)
    return Session(settings, database)


def weekly(session: Session) -> Audience:
    return audience(session.database, ["weekly"])


class Spy:
    """A MessageFactory that notes, at each build, what the database and the lock say."""

    def __init__(self, factory: MessageFactory, session: Session) -> None:
        self.factory, self.session = factory, session
        self.compiled, self.tokens, self.files = factory.compiled, factory.tokens, factory.files
        self.seen: list[tuple[int | None, str, bool]] = []

    def make(
        self, reader: Reader, campaign_id: int | None, message_id: str | None = None
    ) -> object:
        status = Campaigns(self.session.database).get(campaign_id or 0).status
        try:
            with (
                open_database(self.session.settings) as other,
                other.campaign_lock(campaign_id or 0),
            ):  # as another process would try
                locked = False
        except InputError:
            locked = True
        self.seen.append((campaign_id, status, locked))
        return self.factory.make(reader, campaign_id, message_id)


def test_the_campaign_exists_and_is_locked_before_the_first_message_is_built(
    tmp_path: Path,
) -> None:
    session = workspace_with(tmp_path, 12)
    plan = service.plan_campaign(
        session, load_report(EXAMPLE_REPORT), weekly(session), Overrides(outbox=tmp_path / "o")
    )
    spy = Spy(plan.factory, session)
    outcome = asyncio.run(service.send_campaign(session, replace(plan, factory=spy)))  # type: ignore[arg-type]
    assert outcome.campaign_id is not None and outcome.exit_code == 0
    assert spy.seen == [(outcome.campaign_id, "sending", True)] * 12
    assert Campaigns(session.database).get(outcome.campaign_id).counts["sent"] == 12


def test_a_stop_before_the_server_answers_records_no_campaign(tmp_path: Path) -> None:
    with socket.socket() as silent:  # accepts connections, never greets
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        env = {**PUBLICATION,
               "MAILER_SMTP_HOST": "127.0.0.1", "MAILER_SMTP_PORT": str(silent.getsockname()[1]),
               "MAILER_SMTP_SECURITY": "none", "MAILER_SMTP_TIMEOUT": "30"}  # fmt: skip
        session = workspace_with(tmp_path, 3, env)
        plan = service.plan_campaign(session, load_report(EXAMPLE_REPORT), weekly(session))

        async def main() -> service.RunResult:
            asyncio.get_running_loop().call_soon(session.control.stop)
            return await service.send_campaign(session, plan)

        outcome = asyncio.run(main())
    assert outcome.campaign_id is None
    assert outcome.stop == Stop(StopReason.USER) and outcome.exit_code == 130
    assert Campaigns(session.database).all() == []


def test_continue_sends_only_what_is_pending_and_says_so_first(tmp_path: Path) -> None:
    session = workspace_with(tmp_path, 30)
    outbox = Overrides(outbox=tmp_path / "outbox", limit=10)
    plan = service.plan_campaign(session, load_report(EXAMPLE_REPORT), weekly(session), outbox)
    first = asyncio.run(service.send_campaign(session, plan))
    assert first.queued == 20 and first.stop is None
    heard: list[tuple[int, str]] = []
    rest = asyncio.run(
        service.continue_campaign(
            session, first.campaign_id or 0, service.RESUME,
            Overrides(outbox=tmp_path / "outbox"), lambda n, t: heard.append((n, t)),
        )
    )  # fmt: skip
    assert heard == [(20, f"outbox Maildir {tmp_path / 'outbox'}")]
    assert rest.progress.counts["sent"] == 20 and rest.queued == 0
    assert len(list((tmp_path / "outbox" / "new").iterdir())) == 30


@pytest.mark.parametrize(
    ("stop", "text", "code"),
    [
        (Stop(StopReason.USER), "stopped by the user", 130),
        (Stop(StopReason.ABORTED), "aborted by the user", 130),
        (Stop(StopReason.FAILURES, "10 failures in a row"), "paused after 10 failures in a row", 1),
        (Stop(StopReason.ERROR, "disk full"), "stopped by an error: disk full", 1),
    ],
)
def test_a_stop_says_why_and_chooses_the_exit_code(stop: Stop, text: str, code: int) -> None:
    assert str(stop) == text
    assert stop.reason.exit_code == code


def test_a_send_that_another_stored_meanwhile_is_refused_when_stored(tmp_path: Path) -> None:
    """Two `mailer send` of one report started together both pass the check for an earlier
    campaign (it reads before every reader is rendered): the store checks again, under the
    write lock, and the second stores nothing. Before, both went out: every reader twice."""
    session = workspace_with(tmp_path, 5)
    outbox = Overrides(outbox=tmp_path / "outbox")
    report = load_report(EXAMPLE_REPORT)
    first, second = (service.plan_campaign(session, report, weekly(session), outbox)
                     for _ in range(2))  # fmt: skip
    assert asyncio.run(service.send_campaign(session, first)).campaign_id == 1
    with pytest.raises(InputError) as refused:
        asyncio.run(service.send_campaign(session, second))
    assert str(refused.value) == (
        f"{EXAMPLE_REPORT}: another send stored it for weekly meanwhile, as campaign 1;"
        " --again sends it anyway"
    )
    assert [info.id for info in Campaigns(session.database).all()] == [1]
    assert len(list((tmp_path / "outbox" / "new").iterdir())) == 5
    again = service.plan_campaign(session, report, weekly(session), replace(outbox, again=True))
    assert asyncio.run(service.send_campaign(session, again)).campaign_id == 2
