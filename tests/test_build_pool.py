"""Message-building processes: the frame protocol, messages that match the in-process factory
and verify, readers that cannot be rendered, a killed worker, campaigns through the CLI."""

from __future__ import annotations

import asyncio
import gc
import itertools
import logging
import os
import pickle
import re
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.utils import parseaddr
from pathlib import Path

import dkim
import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import Result

from mailer import config
from mailer.compose.report import load_report
from mailer.errors import FileInputError, InputError, WorkerError
from mailer.models import MailingList, Reader
from mailer.send.build_processes import BuildPool, Frames, frame
from mailer.send.dkim_keys import dns_record, generate_key, private_pem
from mailer.send.messages import MessageFactory, Recipe
from tests.conftest import EXAMPLE_CSV, EXAMPLE_REPORT, PUBLICATION, Invoke
from tests.smtp_servers import Recorder, start
from tests.test_dkim import dns_for

# The frame protocol


@given(
    payloads=st.lists(st.binary(max_size=40), max_size=8),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=12),
)
def test_frames_come_out_whole_wherever_the_stream_is_cut(
    payloads: list[bytes], cuts: list[int]
) -> None:
    stream = b"".join(frame(p) for p in payloads)
    ends = []  # where each frame ends in the stream
    for payload in payloads:
        ends.append((ends[-1] if ends else 0) + 4 + len(payload))
    points = sorted({0, len(stream), *(c for c in cuts if c < len(stream))})
    frames, got = Frames(), []
    for begin, stop in itertools.pairwise(points):
        got += frames.feed(stream[begin:stop])
        # A frame comes out as soon as its last byte is in, never earlier.
        assert len(got) == sum(1 for end in ends if end <= stop)
    assert got == payloads
    assert frames.buffer == b""


def test_frames_fed_one_byte_at_a_time_and_all_at_once() -> None:
    payloads = [b"", b"x", b"+DKIM-Signature: a\r\n", bytes(range(256)) * 3]
    stream = b"".join(frame(p) for p in payloads)
    one_by_one, got = Frames(), []
    for i in range(len(stream)):
        got += one_by_one.feed(stream[i : i + 1])
    assert got == payloads
    assert Frames().feed(stream) == payloads
    partial = Frames()
    assert partial.feed(stream + frame(b"next")[:5]) == payloads
    assert partial.feed(frame(b"next")[5:]) == [b"next"]


# The pool against the in-process MessageFactory and dkimpy

CAMPAIGN_ID = 7
NAMES = ["Ada Lovelace", "Zoë Brontë", "Łukasz Nowak", "O'Brien, Pat", 'Tom "Tim" Ash',
         "李小龍", "", "Françoise Dubois-Lemaire de la Vallée du Rhône et de la Saône"]  # fmt: skip
RAIN_REPORT = (
    "---\nsubject: Rain\n---\n# Rain\n\nDear {{ subscriber.name or 'reader' }},\n\n"
    "Rain in {{ subscriber.attributes.city }} today.\n"
)


def recipe_for(
    workspace: Path, kind: str, report: Path = EXAMPLE_REPORT, **env: str
) -> tuple[Recipe, str]:
    """A recipe signing with a new ``kind`` key at keys/KIND.pem, and the key's DNS record."""
    key = generate_key(kind)
    (workspace / "keys").mkdir(exist_ok=True)
    (workspace / "keys" / f"{kind}.pem").write_bytes(private_pem(key))
    signing = {"MAILER_DKIM_DOMAIN": "example.org", "MAILER_DKIM_KEY_FILE": f"keys/{kind}.pem"}
    settings = config.load(workspace, {**signing, **env})
    survey = MailingList(3, "survey", "Lower Vale Water Survey", False, public_archive=True)
    return Recipe(settings, load_report(report), survey, "c1"), dns_record(key)


def reader(i: int, **attributes: str) -> Reader:
    name = f"{NAMES[i % len(NAMES)]} {i}".strip() if i % len(NAMES) != 6 else ""
    return Reader(i, f"r{i}@example.org", name, attributes)


def message_id(recipient: Reader) -> str:
    return f"<c1.{recipient.id}.given@example.org>"


def parsed(message: bytes) -> EmailMessage:
    return message_from_bytes(message, policy=policy.default)


def to_of(message: bytes) -> tuple[str, str]:
    """The To header's display name and address. Not through policy.default, whose parser
    keeps the space between two folded encoded words of a name (CPython gh-128110)."""
    raw = message_from_bytes(message)["To"]
    return parseaddr(str(make_header(decode_header(raw))))


def comparable(message: bytes) -> tuple[list[bytes], dict[bytes, bytes], bytes]:
    """The header fields but Date and DKIM-Signature, the signature's tags but t=, b= and bh=,
    and the body; the MIME boundary (random per process) replaced by a fixed word."""
    found = re.search(rb'boundary="([^"]+)"', message)
    assert found, message[:300]
    head, _, body = message.replace(found.group(1), b"BOUNDARY").partition(b"\r\n\r\n")
    fields = re.split(rb"\r\n(?![ \t])", head)
    names = [f.partition(b":")[0].lower() for f in fields]
    assert names.count(b"date") == 1 and names.count(b"dkim-signature") == 1, names
    [signature] = [f for f, n in zip(fields, names, strict=True) if n == b"dkim-signature"]
    value = re.sub(rb"\s+", b"", signature.partition(b":")[2])
    tags = dict(tag.partition(b"=")[::2] for tag in value.split(b";") if tag)
    assert set(tags) >= {b"v", b"a", b"d", b"s", b"t", b"h", b"bh", b"b"}, tags
    kept = {k: v for k, v in tags.items() if k not in (b"t", b"b", b"bh")}
    left_out = (b"date", b"dkim-signature")
    headers = [f for f, n in zip(fields, names, strict=True) if n not in left_out]
    return headers, kept, body


def pids(pool: BuildPool) -> list[int]:
    found = [w.transport.get_pid() if w.transport else None for w in pool.workers]
    assert None not in found
    return found  # type: ignore[return-value]


@asynccontextmanager
async def running(recipe: Recipe, processes: int) -> AsyncIterator[BuildPool]:
    pool = BuildPool(recipe, processes)
    await pool.start()
    try:
        yield pool
    finally:
        await asyncio.wait_for(pool.close(), 10)  # close() must return even after a failure
        assert pool.workers == []


@pytest.mark.parametrize("kind", ["rsa", "ed25519"])
async def test_workers_build_what_the_factory_builds_and_every_message_verifies(
    workspace: Path, kind: str
) -> None:
    recipe, record = recipe_for(workspace, kind, MAILER_SMTP_PASSWORD="s3cret-smtp",
                                MAILER_BOUNCES_IMAP_PASSWORD="s3cret-imap")  # fmt: skip
    assert recipe.settings.smtp.password == "s3cret-smtp"  # there is a password to leave out
    factory = MessageFactory(recipe)  # first, as the CLI does: it creates the token secret
    readers = [reader(i, city=f"Town {i}") for i in range(1, 41)]
    async with running(recipe, 2) as pool:
        children = pids(pool)
        assert len(set(children)) == 2
        shipped = pickle.dumps(pool.recipe)
        builds = [pool.build(r, CAMPAIGN_ID, message_id(r)) for r in readers]
        built = [b"".join(m) for m in await asyncio.wait_for(asyncio.gather(*builds), 30)]
    assert not any(Path(f"/proc/{pid}").exists() for pid in children)
    assert b"s3cret" not in shipped
    lookup = dns_for(record)
    for recipient, message in zip(readers, built, strict=True):
        assert dkim.verify(message, dnsfunc=lookup), recipient
        headers = parsed(message)
        assert headers["Message-ID"] == message_id(recipient)
        assert to_of(message) == (recipient.name, recipient.email)
        here, here_id = factory.make(recipient, CAMPAIGN_ID, message_id(recipient))
        assert here_id == message_id(recipient)
        assert comparable(message) == comparable(b"".join(here)), recipient
    # The comparison can tell two readers apart: their To and their links differ.
    assert comparable(built[0])[0] != comparable(built[1])[0]
    assert comparable(built[0])[2] != comparable(built[1])[2]


async def test_a_reader_whose_message_cannot_be_rendered_fails_alone(workspace: Path) -> None:
    report = workspace / "rain.md"
    report.write_text(RAIN_REPORT, encoding="utf-8")
    recipe, record = recipe_for(workspace, "ed25519", report)
    factory = MessageFactory(recipe)
    # Every fifth reader has no city, which the report prints: StrictUndefined refuses.
    readers = [reader(i) if i % 5 == 3 else reader(i, city=f"Town {i}") for i in range(1, 21)]
    async with running(recipe, 2) as pool:
        builds = [pool.build(r, CAMPAIGN_ID, message_id(r)) for r in readers]
        outcomes = await asyncio.wait_for(asyncio.gather(*builds, return_exceptions=True), 30)
        after = b"".join(await pool.build(readers[0], CAMPAIGN_ID, message_id(readers[0])))
    assert dkim.verify(after, dnsfunc=dns_for(record))  # the workers carried on
    failed = [r.email for r, o in zip(readers, outcomes, strict=True) if isinstance(o, Exception)]
    assert failed == [r.email for r in readers if not r.attributes] and len(failed) == 4
    for recipient, outcome in zip(readers, outcomes, strict=True):
        if not recipient.attributes:
            assert type(outcome) is InputError, outcome
            with pytest.raises(FileInputError) as here:
                factory.make(recipient, CAMPAIGN_ID, message_id(recipient))
            assert str(outcome) == str(here.value)
            assert str(outcome).startswith(f"{report}:")
            assert "city" in str(outcome) and f"(for {recipient.email})" in str(outcome)
            continue
        assert isinstance(outcome, list), outcome
        signed = b"".join(outcome)
        assert dkim.verify(signed, dnsfunc=dns_for(record)), recipient
        message = parsed(signed)
        assert to_of(signed) == (recipient.name, recipient.email)
        text = message.get_body(("plain",))
        assert text is not None
        assert f"Rain in Town {recipient.id} today." in text.get_content()


async def test_failures_nobody_awaits_log_nothing(
    workspace: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A stopped campaign leaves queued builds unawaited; their failures must stay quiet."""
    report = workspace / "rain.md"
    report.write_text(RAIN_REPORT, encoding="utf-8")
    recipe, record = recipe_for(workspace, "ed25519", report)
    MessageFactory(recipe)
    async with running(recipe, 1) as pool:
        unawaited = [pool.build(reader(i), CAMPAIGN_ID, message_id(reader(i))) for i in range(5)]
        # One worker answers in order: once this one is here, so are the failures before it.
        last = await pool.build(reader(9, city="Oslo"), CAMPAIGN_ID, message_id(reader(9)))
        assert dkim.verify(b"".join(last), dnsfunc=dns_for(record))
        assert all(f.done() for f in unawaited)  # failed (no city); not asked, so not retrieved
    caplog.clear()
    del unawaited
    assert warnings_logged(caplog) == []


async def test_workers_get_no_mailer_variables_from_the_environment(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAILER_SMTP_PASSWORD", "s3cret-env")
    recipe, _ = recipe_for(workspace, "ed25519")
    MessageFactory(recipe)
    async with running(recipe, 1) as pool:
        [pid] = pids(pool)
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    assert b"PATH=" in environ  # the worker's own environment, read whole
    assert b"s3cret-env" not in environ and b"MAILER_" not in environ


async def test_a_killed_worker_fails_pending_and_later_builds(workspace: Path) -> None:
    recipe, record = recipe_for(workspace, "ed25519")
    MessageFactory(recipe)
    async with running(recipe, 1) as pool:
        first = await pool.build(reader(1), CAMPAIGN_ID, message_id(reader(1)))
        assert dkim.verify(b"".join(first), dnsfunc=dns_for(record))
        [pid] = pids(pool)
        os.kill(pid, signal.SIGKILL)
        # No await between the kill and this request: it is pending when the death is noticed.
        with pytest.raises(WorkerError) as pending:  # a failure, not a wait forever
            await asyncio.wait_for(pool.build(reader(2), CAMPAIGN_ID, message_id(reader(2))), 10)
        with pytest.raises(WorkerError) as later:
            await pool.build(reader(3), CAMPAIGN_ID, message_id(reader(3)))
    assert str(pending.value) == "the message-building process exited with code -9"
    assert str(later.value) == str(pending.value)
    assert not Path(f"/proc/{pid}").exists()


async def test_a_worker_that_cannot_set_up_fails_every_build(workspace: Path) -> None:
    recipe, _ = recipe_for(workspace, "ed25519")
    MessageFactory(recipe)
    (workspace / "keys" / "ed25519.pem").unlink()  # gone between the parent's check and the pool
    async with running(recipe, 1) as pool:
        with pytest.raises(WorkerError) as first:
            await asyncio.wait_for(pool.build(reader(1), CAMPAIGN_ID, message_id(reader(1))), 10)
        with pytest.raises(WorkerError) as second:
            await pool.build(reader(2), CAMPAIGN_ID, message_id(reader(2)))
    assert str(first.value) == (
        "cannot set up a message-building process: "
        f"{workspace}/keys/ed25519.pem: cannot read the DKIM key: No such file or directory"
    )
    assert str(second.value) == str(first.value)


# Through the CLI


def build_children() -> list[int]:
    """Live children of this process (the CLI runs in it) that are message-building workers."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:  # it ended while we looked
            continue
        parent = int(stat.rpartition(")")[2].split()[1])
        if parent == os.getpid() and b"mailer.send.build_processes" in cmdline:
            found.append(int(entry.name))
    return found


@dataclass
class WorkerWatch(Recorder):
    """Records messages and how many building workers were alive at each; with ``kill_at``,
    SIGKILLs the workers when that many messages have been accepted."""

    kill_at: int = 0
    killed: list[int] = field(default_factory=list)
    alive: list[int] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        answer = await super().handle_DATA(server, session, envelope)
        children = build_children()
        self.alive.append(len(children))
        if len(self.received) == self.kill_at:
            for pid in children:
                os.kill(pid, signal.SIGKILL)
            self.killed = children
        return answer


def keygen(mailer: Invoke) -> str:
    made = mailer("dkim", "keygen", "--domain", "example.org", "--type", "ed25519")
    assert made.exit_code == 0, made.output
    [line] = [x for x in made.stdout.splitlines() if "._domainkey." in x]
    return "".join(re.findall(r'"([^"]*)"', line))


def import_example(mailer: Invoke) -> None:
    imported = mailer("subscribers", "import", "example", str(EXAMPLE_CSV), "--create-list")
    assert imported.exit_code == 0, imported.output


def signed_env(port: int, **extra: str) -> dict[str, str]:
    return {"MAILER_SMTP_HOST": "127.0.0.1", "MAILER_SMTP_PORT": str(port),
            "MAILER_SMTP_SECURITY": "none", "MAILER_DKIM_DOMAIN": "example.org",
            **PUBLICATION, **extra}  # fmt: skip


def send_watched(mailer: Invoke, report: Path, slug: str, **env: str) -> tuple[Result, WorkerWatch]:
    """``mailer send`` to a server that records each message and the workers alive at it."""
    watch = WorkerWatch()
    controller = start(watch)
    try:
        sent = mailer("send", str(report), "--list", slug, "--yes",
                      env=signed_env(controller.port, **env))  # fmt: skip
    finally:
        controller.stop()
    return sent, watch


def warnings_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    gc.collect()  # a failed future nobody awaited would log when collected
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_killed_worker_pauses_the_campaign_and_resume_sends_the_rest(
    mailer: Invoke, caplog: pytest.LogCaptureFixture
) -> None:
    record = keygen(mailer)
    import_example(mailer)
    watch = WorkerWatch(kill_at=5)
    controller = start(watch)
    env = signed_env(controller.port)
    try:
        sent = mailer("send", str(EXAMPLE_REPORT), "--list", "example", "--yes",
                      "--concurrency", "2", env=env)  # fmt: skip
        first = len(watch.received)
        resumed_id = re.search(r"resume with: mailer campaigns resume (\d+)", sent.stderr)
        assert resumed_id, sent.output
        shown = mailer("campaigns", "show", resumed_id.group(1))
        resumed = mailer("campaigns", "resume", resumed_id.group(1), env=env)
    finally:
        controller.stop()
    assert watch.killed, "no message-building process was running at the 5th message"
    assert sent.exit_code == 1 and isinstance(sent.exception, SystemExit), sent.output
    assert "Traceback" not in sent.output
    campaign = resumed_id.group(1)
    [line] = [x for x in sent.output.splitlines() if "message-building process" in x]
    assert line.startswith(
        f"error: campaign {campaign} paused (stopped by an error: the message-building process"
        " exited with code -9"
    ), line
    assert line.endswith(f"resume with: mailer campaigns resume {campaign}")
    assert "status:   paused" in shown.stdout
    assert 5 <= first < 20
    assert resumed.exit_code == 0, resumed.output
    counts = watch.counts()
    assert len(counts) == 20 and set(counts.values()) == {1}
    for received in watch.received:
        assert dkim.verify(received.data, dnsfunc=dns_for(record)), received.recipient
    assert "status:   done" in mailer("campaigns", "show", campaign).stdout
    assert build_children() == []
    assert warnings_logged(caplog) == []


def test_processes_setting_sets_the_number_of_workers(mailer: Invoke) -> None:
    record = keygen(mailer)
    import_example(mailer)
    sent, watch = send_watched(mailer, EXAMPLE_REPORT, "example", MAILER_DKIM_PROCESSES="2")
    assert sent.exit_code == 0, sent.output
    assert len(watch.received) == 20 and set(watch.alive) == {2}
    for received in watch.received:
        assert dkim.verify(received.data, dnsfunc=dns_for(record)), received.recipient
    assert build_children() == []


def test_negative_processes_is_a_one_line_config_error(mailer: Invoke) -> None:
    keygen(mailer)
    import_example(mailer)
    result = mailer("send", str(EXAMPLE_REPORT), "--list", "example", "--yes",
                    env=signed_env(1, MAILER_DKIM_PROCESSES="-1"))  # fmt: skip
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert result.stderr.strip() == (
        "error: MAILER_DKIM_PROCESSES: dkim.processes: must not be negative, got '-1'"
    )


def test_a_reader_the_report_fails_for_stops_the_signed_send_before_anything(
    mailer: Invoke, workspace: Path, caplog: pytest.LogCaptureFixture
) -> None:
    keygen(mailer)
    readers = workspace / "rain.csv"
    rows = [f"r{i}@example.org,Reader {i},{'' if i == 7 else f'Town {i}'}\n" for i in range(20)]
    readers.write_text("email,name,city\n" + "".join(rows), encoding="utf-8")
    imported = mailer("subscribers", "import", "rain", str(readers), "--create-list")
    assert imported.exit_code == 0, imported.output
    report = workspace / "rain.md"
    report.write_text(RAIN_REPORT, encoding="utf-8")
    sent, watch = send_watched(mailer, report, "rain", MAILER_DKIM_PROCESSES="2")
    # Every reader is rendered before the campaign is stored, as --dry-run does: r7 has no
    # city, so nothing is stored, no worker starts, and nobody gets a message.
    assert sent.exit_code == 1 and "Traceback" not in sent.output
    assert re.fullmatch(
        rf"error: {re.escape(str(report))}:8: .*city.*\(for r7@example\.org\)\n", sent.stderr
    ), sent.stderr
    assert watch.received == [] and watch.alive == []
    assert "no campaigns yet" in mailer("campaigns", "ls").stderr
    assert build_children() == []
    assert warnings_logged(caplog) == []
