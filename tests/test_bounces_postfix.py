"""Real bounces from a real MTA: a private Postfix on loopback bounces mail to unknown users and
to a full mailbox, delivers the bounces (and a mailed unsubscribe) to a Maildir, and
``mailer bounces process`` reads that Maildir."""

from __future__ import annotations

import os
import shutil
import smtplib
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.conftest import Invoke
from tests.smtp_servers import closed_port, start
from tests.test_bounces import open_store, seed, snapshot, status_of, verp_address

POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"
MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
local     unix  - n n - - local
virtual   unix  - n n - - virtual
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
"""
NOBODY = 65534  # virtual(8) writes the bounce mailbox as this uid, never as root


class MailboxFull:
    """The remote end of soft.test: every recipient's mailbox is full."""

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        return f"452 4.2.2 <{address}>: mailbox full"


@dataclass
class Postfix:
    root: Path
    port: int

    @property
    def conf(self) -> Path:
        return self.root / "conf"

    @property
    def maildir(self) -> Path:
        return self.root / "mail" / "Maildir"

    def log(self) -> str:
        path = self.root / "maillog"
        return path.read_text(errors="replace") if path.exists() else "(no maillog)"

    def run(self, *args: str) -> None:
        done = subprocess.run([POSTFIX, "-c", str(self.conf), *args], capture_output=True)
        if done.returncode:
            pytest.fail(f"postfix {' '.join(args)} failed: {done.stderr!r}\n{self.log()}")

    def wait_for_mail(self, count: int, deadline: float = 60.0) -> list[Path]:
        """Poll the Maildir until ``count`` messages arrived (Postfix works asynchronously)."""
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            arrived = sorted((self.maildir / "new").glob("*")) if self.maildir.exists() else []
            if len(arrived) >= count:
                return arrived
            time.sleep(0.05)
        pytest.fail(f"{count} bounces expected within {deadline}s\n{self.log()}")


def _main_cf(root: Path, soft_port: int) -> str:
    settings = {
        "compatibility_level": "3.6",
        "config_directory": root / "conf",
        "queue_directory": root / "queue",
        "data_directory": root / "data",
        "maillog_file": root / "maillog",
        "maillog_file_prefixes": root,
        "mail_owner": "postfix",
        "setgid_group": "postdrop",
        "myhostname": "mx.mailer.test",
        "mydomain": "mailer.test",
        "myorigin": "mailer.test",
        "inet_interfaces": "loopback-only",
        "inet_protocols": "ipv4",
        "mynetworks": "127.0.0.0/8",
        # Unknown local users are accepted, then bounced by local(8): Postfix writes the DSN.
        "mydestination": "dest.test",
        "local_recipient_maps": "",
        "alias_maps": "",
        "alias_database": "",
        # The newsletter's own domain: bounces (VERP or not) and unsubscribes land in one Maildir.
        "virtual_mailbox_domains": "bounces.test",
        "virtual_mailbox_base": root / "mail",
        "virtual_mailbox_maps": "inline:{ bounces@bounces.test=Maildir/,"
        " bulletin@bounces.test=Maildir/ }",
        "virtual_uid_maps": f"static:{NOBODY}",
        "virtual_gid_maps": f"static:{NOBODY}",
        "recipient_delimiter": "+",
        # soft.test is a local aiosmtpd that answers 452; try once, then return the mail.
        "transport_maps": f"inline:{{ {{soft.test=smtp:[127.0.0.1]:{soft_port}}} }}",
        "maximal_queue_lifetime": "0",
        "bounce_queue_lifetime": "0",
        "smtp_dns_support_level": "disabled",
        "smtp_tls_security_level": "none",
        # Nothing leaves this machine.
        "relayhost": "",
        "default_transport": "error:no network in tests",
        "relay_transport": "error:no network in tests",
        "smtputf8_enable": "no",
        "biff": "no",
    }
    return "".join(f"{key} = {value}\n" for key, value in settings.items())


@pytest.fixture
def postfix() -> Iterator[Postfix]:
    if os.geteuid() != 0 or not Path(POSTFIX).exists():
        pytest.fail("these tests start Postfix: run as root with Debian's postfix installed")
    soft = start(MailboxFull())
    # Postfix's unprivileged daemons must reach these paths: not under pytest's 0700 folder.
    root = Path(tempfile.mkdtemp(prefix="mailer-postfix-"))
    root.chmod(0o755)
    server = Postfix(root, closed_port())
    for sub in ("conf", "queue", "data", "mail"):
        (root / sub).mkdir()
    shutil.chown(root / "data", "postfix")
    os.chown(root / "mail", NOBODY, NOBODY)
    (server.conf / "main.cf").write_text(_main_cf(root, soft.port))
    (server.conf / "master.cf").write_text(MASTER_CF.format(port=server.port))
    try:
        server.run("start")
        _wait_for_port(server)
        yield server
    finally:
        _stop(server)
        soft.stop()
        shutil.rmtree(root, ignore_errors=True)


def _wait_for_port(server: Postfix, deadline: float = 30.0) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"postfix did not listen on 127.0.0.1:{server.port}\n{server.log()}")


def _stop(server: Postfix) -> None:
    pid_file = server.root / "queue" / "pid" / "master.pid"
    pid = int(pid_file.read_text().split()[0]) if pid_file.exists() else 0
    subprocess.run([POSTFIX, "-c", str(server.conf), "stop"], capture_output=True)
    end = time.monotonic() + 20
    while pid and time.monotonic() < end:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


def _message(sender: str, recipient: str, message_id: str, subject: str = "This week") -> bytes:
    return (
        f"From: The Example Bulletin <{sender}>\r\nTo: <{recipient}>\r\nSubject: {subject}\r\n"
        f"Message-ID: {message_id}\r\nList-Id: <weekly.bounces.test>\r\n"
        "List-Unsubscribe: <mailto:bulletin+unsubscribe-weekly@bounces.test"
        "?subject=unsubscribe>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello.\r\n"
    ).encode()


def test_postfix_bounces(postfix: Postfix, mailer: Invoke, workspace: Path) -> None:
    readers = ["gone@dest.test", "plain@dest.test", "full@soft.test", "ada@example.net"]
    with open_store(workspace) as store:
        campaign, ids = seed(store, dict.fromkeys(readers, ""))
        message_ids = dict(
            store.connection.execute(
                "SELECT s.email, d.message_id FROM deliveries d JOIN subscribers s"
                " ON s.id = d.subscriber_id WHERE d.campaign_id = ?",
                (campaign,),
            ).fetchall()
        )

    def verp(email: str) -> str:
        return verp_address(workspace, ids[email], campaign, "bounces.test")

    with smtplib.SMTP("127.0.0.1", postfix.port, timeout=30) as smtp:
        for email, sender in [
            ("gone@dest.test", verp("gone@dest.test")),  # unknown user, VERP return path
            ("plain@dest.test", "bulletin@bounces.test"),  # unknown user, plain return path
            ("full@soft.test", verp("full@soft.test")),  # 452 mailbox full, then given up
        ]:
            smtp.sendmail(
                sender, [email], _message("bulletin@bounces.test", email, message_ids[email])
            )
        # A reader's client uses the List-Unsubscribe mailto.
        unsubscribe = _message(
            "ada@example.net", "bulletin+unsubscribe-weekly@bounces.test", "<u1@example.net>",
            subject="unsubscribe",
        )  # fmt: skip
        smtp.sendmail("ada@example.net", ["bulletin+unsubscribe-weekly@bounces.test"], unsubscribe)
    arrived = postfix.wait_for_mail(4)
    texts = [p.read_bytes() for p in arrived]
    assert sum(b"Delivered-To: bounces+" in t for t in texts) == 2  # the VERP ones
    assert sum(b"Status: 5.1.1" in t for t in texts) == 2
    assert sum(b"Status: 4.2.2" in t for t in texts) == 1

    result = mailer("bounces", "process", str(postfix.maildir))
    assert result.exit_code == 0, result.output + postfix.log()
    assert result.stdout.strip() == (
        "4 messages read: 2 hard, 1 soft, 1 unsubscribed, 0 unmatched, 0 unrecognised,"
        " 0 already processed; 2 readers now bounced"
    )
    with open_store(workspace) as store:
        assert status_of(store, "gone@dest.test") == "bounced"
        assert status_of(store, "plain@dest.test") == "bounced"
        assert status_of(store, "full@soft.test") == "active"
        events = store.connection.execute(
            "SELECT s.email, e.kind, e.campaign_id, e.detail FROM events e"
            " JOIN subscribers s ON s.id = e.subscriber_id WHERE e.kind != 'subscribed'"
            " ORDER BY s.email"
        ).fetchall()
        assert events == [
            ("ada@example.net", "unsubscribed", None, "mailto"),
            ("full@soft.test", "soft_bounce", campaign,
             "4.2.2 smtp; 452 4.2.2 <full@soft.test>: mailbox full"),
            ("gone@dest.test", "bounced", campaign, '5.1.1 X-Postfix; unknown user: "gone"'),
            ("plain@dest.test", "bounced", campaign, '5.1.1 X-Postfix; unknown user: "plain"'),
        ]  # fmt: skip
        deliveries = store.connection.execute(
            "SELECT s.email, d.status, d.last_code FROM deliveries d"
            " JOIN subscribers s ON s.id = d.subscriber_id ORDER BY s.email"
        ).fetchall()
        assert deliveries == [
            ("ada@example.net", "sent", 250),
            ("full@soft.test", "failed", 452),
            ("gone@dest.test", "failed", None),
            ("plain@dest.test", "failed", None),
        ]
        before = snapshot(store)
    assert list((postfix.maildir / "new").iterdir()) == []
    kept = sorted(p.name for p in (postfix.maildir / "cur").iterdir())
    assert len(kept) == 4 and all(name.endswith(":2,S") for name in kept)

    again = mailer("bounces", "process", str(postfix.maildir))
    assert again.exit_code == 0
    assert again.stdout.startswith("0 messages read")
    assert sorted(p.name for p in (postfix.maildir / "cur").iterdir()) == kept
    with open_store(workspace) as store:
        assert snapshot(store) == before
