"""DKIM signing processes: the frame protocol, signatures that verify, a killed worker."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import itertools
import logging
import os
import re
import signal
from dataclasses import dataclass, field
from pathlib import Path

import dkim
import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from hypothesis import given
from hypothesis import strategies as st

from mailer.dkim_pool import Frames, SigningPool, frame
from mailer.dkim_sign import DkimSigner, dns_record, generate_key
from mailer.errors import SigningError
from mailer.mime import relaxed_body
from tests.conftest import EXAMPLE_CSV, EXAMPLE_REPORT, Invoke
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


# The pool against dkimpy


def message(i: int) -> bytes:
    return (
        f"From: News <news@example.org>\r\nTo: Reader {i} <r{i}@example.org>\r\n"
        f"Subject: Issue {i}\r\nDate: Wed, 25 Nov 2026 10:00:00 +0000\r\n"
        f"Message-ID: <{i}.pool@example.org>\r\nList-Id: News <news.example.org>\r\n\r\n"
        f"Dear reader {i},  runs   of\tspace \r\n" + "line\r\n" * i + "\r\n\r\n"
    ).encode()


def body_hash_of(raw: bytes) -> bytes:
    return hashlib.sha256(relaxed_body(raw.partition(b"\r\n\r\n")[2])).digest()


def pids(pool: SigningPool) -> list[int]:
    found = [w.transport.get_pid() if w.transport else None for w in pool.workers]
    assert None not in found
    return found  # type: ignore[return-value]


@pytest.mark.parametrize("kind", ["rsa", "ed25519"])
async def test_concurrent_signatures_each_verify_for_their_own_message(kind: str) -> None:
    key = generate_key(kind)
    pool = SigningPool(DkimSigner("example.org", "mailer", key), 2)
    await pool.start()
    try:
        children = pids(pool)
        assert len(set(children)) == 2
        messages = [message(i) for i in range(50)]
        # Every other message comes with its body hash, as the campaign builder passes it.
        signed = await asyncio.gather(
            *(pool.sign(m, body_hash_of(m) if i % 2 else None) for i, m in enumerate(messages))
        )
    finally:
        await pool.close()
    assert pool.workers == []
    assert not any(Path(f"/proc/{pid}").exists() for pid in children)
    lookup = dns_for(dns_record(key))
    for original, result in zip(messages, signed, strict=True):
        assert result.startswith(b"DKIM-Signature: v=1; a=") and result.endswith(original)
        assert dkim.verify(result, dnsfunc=lookup), original[:80]
    # A signature moved to another message fails: the check above can tell a mix-up.
    swapped = signed[0][: -len(messages[0])] + messages[1]
    assert not dkim.verify(swapped, dnsfunc=lookup)


async def test_a_killed_worker_fails_pending_and_later_signatures() -> None:
    key = generate_key("ed25519")
    pool = SigningPool(DkimSigner("example.org", "mailer", key), 1)
    await pool.start()
    try:
        assert dkim.verify(await pool.sign(message(1)), dnsfunc=dns_for(dns_record(key)))
        [pid] = pids(pool)
        os.kill(pid, signal.SIGKILL)
        # No await between the kill and this request: it is pending when the death is noticed.
        with pytest.raises(SigningError) as pending:
            await pool.sign(message(2))
        with pytest.raises(SigningError) as later:
            await pool.sign(message(3), body_hash_of(message(3)))
    finally:
        await asyncio.wait_for(pool.close(), 10)
    assert str(pending.value) == "the DKIM signing process exited with code -9"
    assert str(later.value) == str(pending.value)
    assert not Path(f"/proc/{pid}").exists()


# Through the CLI


def signing_children() -> list[int]:
    """Live children of this process (the CLI runs in it) that are DKIM signing workers."""
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
        if parent == os.getpid() and b"mailer.dkim_pool" in cmdline:
            found.append(int(entry.name))
    return found


@dataclass
class SignerWatch(Recorder):
    """Records messages and how many signing workers were alive at each; with ``kill_at``,
    SIGKILLs the workers when that many messages have been accepted."""

    kill_at: int = 0
    killed: list[int] = field(default_factory=list)
    alive: list[int] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        answer = await super().handle_DATA(server, session, envelope)
        children = signing_children()
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
    imported = mailer("subscribers", "import", "example", str(EXAMPLE_CSV), "--create-list")
    assert imported.exit_code == 0, imported.output
    return "".join(re.findall(r'"([^"]*)"', line))


def signed_env(port: int, **extra: str) -> dict[str, str]:
    return {"MAILER_SMTP_HOST": "127.0.0.1", "MAILER_SMTP_PORT": str(port),
            "MAILER_SMTP_SECURITY": "none", "MAILER_DKIM_DOMAIN": "example.org",
            **extra}  # fmt: skip


def test_killed_signer_pauses_the_campaign_and_resume_sends_the_rest(
    mailer: Invoke, caplog: pytest.LogCaptureFixture
) -> None:
    record = keygen(mailer)
    watch = SignerWatch(kill_at=5)
    controller = start(watch)
    env = signed_env(controller.port)
    try:
        sent = mailer("send", str(EXAMPLE_REPORT), "--list", "example", "--yes",
                      "--concurrency", "2", env=env)  # fmt: skip
        first = len(watch.received)
        resumed_id = re.search(r"resume with: mailer campaigns resume (\d+)", sent.stdout)
        assert resumed_id, sent.output
        shown = mailer("campaigns", "show", resumed_id.group(1))
        resumed = mailer("campaigns", "resume", resumed_id.group(1), env=env)
    finally:
        controller.stop()
    assert watch.killed, "no signing process was running at the 5th message"
    assert sent.exit_code == 1 and isinstance(sent.exception, SystemExit), sent.output
    assert "Traceback" not in sent.output
    campaign = resumed_id.group(1)
    [line] = [x for x in sent.output.splitlines() if "DKIM signing process" in x]
    assert line.startswith(f"campaign {campaign} paused (stopped by an error: the DKIM signing")
    assert line.endswith(f"resume with: mailer campaigns resume {campaign}")
    assert "status:   paused" in shown.stdout
    assert 5 <= first < 20
    assert resumed.exit_code == 0, resumed.output
    counts = watch.counts()
    assert len(counts) == 20 and set(counts.values()) == {1}
    for received in watch.received:
        assert dkim.verify(received.data, dnsfunc=dns_for(record)), received.recipient
    gc.collect()  # a failed future nobody awaited would log when collected
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_processes_setting_sets_the_number_of_signing_workers(mailer: Invoke) -> None:
    record = keygen(mailer)
    watch = SignerWatch()
    controller = start(watch)
    try:
        sent = mailer("send", str(EXAMPLE_REPORT), "--list", "example", "--yes",
                      env=signed_env(controller.port, MAILER_DKIM_PROCESSES="2"))  # fmt: skip
    finally:
        controller.stop()
    assert sent.exit_code == 0, sent.output
    assert len(watch.received) == 20 and set(watch.alive) == {2}
    for received in watch.received:
        assert dkim.verify(received.data, dnsfunc=dns_for(record)), received.recipient
    assert signing_children() == []


def test_negative_processes_is_a_one_line_config_error(mailer: Invoke) -> None:
    keygen(mailer)
    result = mailer("send", str(EXAMPLE_REPORT), "--list", "example", "--yes",
                    env=signed_env(1, MAILER_DKIM_PROCESSES="-1"))  # fmt: skip
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert result.stderr.strip() == (
        "error: MAILER_DKIM_PROCESSES: dkim.processes: must not be negative, got '-1'"
    )
