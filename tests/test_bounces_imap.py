"""Bounces read over IMAP: a private Dovecot on loopback with a self-signed certificate that the
test trusts (the client verifies it, as in production); messages are flagged, never deleted."""

from __future__ import annotations

import imaplib
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mailer.audience import lists, members
from tests.conftest import Invoke
from tests.smtp_servers import closed_port, server_tls
from tests.test_bounces import (
    DSN,
    one_line,
    open_store,
    postfix_bounce,
    seed,
    snapshot,
    status_of,
    unsubscribe_mail,
    verp_address,
)

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
USER, PASSWORD = "bounces@example.test", "imap-secret"
NOBODY = 65534
CONFIG = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = required
ssl_cert = <{root}/cert.pem
ssl_key = <{root}/key.pem
auth_mechanisms = plain
auth_failure_delay = 0
passdb {{
  driver = passwd-file
  args = {root}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={uid} home={root}/home/%u
}}
mail_location = maildir:~/Maildir
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
"""


@dataclass
class Dovecot:
    root: Path
    port: int

    @property
    def cafile(self) -> Path:
        return self.root / "cert.pem"

    @property
    def url(self) -> str:
        return f"imaps://{USER.replace('@', '%40')}@127.0.0.1:{self.port}/INBOX"

    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else "(no log)"

    def client(self) -> imaplib.IMAP4_SSL:
        context = ssl.create_default_context(cafile=str(self.cafile))
        imap = imaplib.IMAP4_SSL("127.0.0.1", self.port, ssl_context=context, timeout=30)
        imap.login(USER, PASSWORD)
        imap.select("INBOX")
        return imap

    def append(self, *messages: bytes) -> None:
        imap = self.client()
        for data in messages:
            typ, _ = imap.append("INBOX", None, None, data)
            assert typ == "OK"
        imap.logout()

    def flags(self) -> list[set[str]]:
        """The flags of every message in INBOX, in order."""
        imap = self.client()
        typ, data = imap.fetch("1:*", "(FLAGS)")
        imap.logout()
        assert typ == "OK"
        found = []
        for line in data:
            assert isinstance(line, bytes)
            inner = line.decode().split("FLAGS (", 1)[1].split(")", 1)[0]
            found.append(set(inner.split()) - {"\\Recent"})
        return found


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    if os.geteuid() != 0 or not Path(DOVECOT).exists():
        pytest.fail("these tests start Dovecot: run as root with Debian's dovecot-imapd installed")
    # Dovecot's unprivileged processes must reach these paths: not under pytest's 0700 folder.
    root = Path(tempfile.mkdtemp(prefix="mailer-dovecot-"))
    root.chmod(0o755)
    server = Dovecot(root, closed_port())
    for sub in ("run", "state", "home"):
        (root / sub).mkdir()
    os.chown(root / "home", NOBODY, NOBODY)
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(root / "key.pem"), "-out", str(root / "cert.pem"),
         "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True,
    )  # fmt: skip
    (root / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
    (root / "dovecot.conf").write_text(CONFIG.format(root=root, port=server.port, uid=NOBODY))
    process = subprocess.Popen(
        [DOVECOT, "-F", "-c", str(root / "dovecot.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_for_port(server, process)
        yield server
    finally:
        process.terminate()
        process.wait(timeout=20)
        if process.stderr is not None:
            process.stderr.close()
        shutil.rmtree(root, ignore_errors=True)


def _wait_for_port(server: Dovecot, process: subprocess.Popen[bytes], deadline: float = 30) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if process.poll() is not None:
            error = process.stderr.read().decode() if process.stderr else ""
            pytest.fail(f"dovecot exited with {process.returncode}: {error}\n{server.log()}")
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"dovecot did not listen on 127.0.0.1:{server.port}\n{server.log()}")


def test_imap_bounces(dovecot: Dovecot, mailer: Invoke, workspace: Path) -> None:
    with open_store(workspace) as store:
        campaign, ids = seed(
            store,
            {
                "gone@example.com": "",
                "nobody.here@outlook.com": "<1.44.0badc0ffee123456@example.org>",
                "ada@example.net": "",
            },
        )
    dovecot.append(
        postfix_bounce(
            "gone@example.com", verp_address(workspace, ids["gone@example.com"], campaign)
        ),
        (DSN / "outlook-hard-5.1.10.eml").read_bytes(),
        unsubscribe_mail("ada@example.net", "weekly"),
        (DSN / "vacation-autoreply.eml").read_bytes(),
    )
    env = {"MAILER_BOUNCES_IMAP_PASSWORD": PASSWORD, "SSL_CERT_FILE": str(dovecot.cafile)}

    dry = mailer("bounces", "process", dovecot.url, "--dry-run", env=env)
    assert dry.exit_code == 0, dry.output + dovecot.log()
    assert dry.stdout.startswith("dry run, nothing changed: 4 messages read: 2 hard")
    assert dovecot.flags() == [set()] * 4

    result = mailer("bounces", "process", dovecot.url, env=env)
    assert result.exit_code == 0, result.output + dovecot.log()
    assert result.stdout.strip() == (
        "4 messages read: 2 hard, 0 soft, 1 unsubscribed, 0 unmatched, 1 unrecognised,"
        " 0 already processed; 2 readers now bounced"
    )
    assert one_line(result.stderr).startswith("unrecognised: 4: neither a bounce")
    assert dovecot.flags() == [{"\\Seen", "$MailerProcessed"}] * 4  # flagged, none deleted
    with open_store(workspace) as store:
        assert status_of(store, "gone@example.com") == "bounced"
        assert status_of(store, "nobody.here@outlook.com") == "bounced"
        member = members.find(store, lists.get(store, "weekly"), "ada@example.net")
        assert member is not None and member.status == "unsubscribed"
        before = snapshot(store)

    again = mailer("bounces", "process", dovecot.url, env=env)
    assert again.exit_code == 0
    assert again.stdout.startswith("0 messages read")
    with open_store(workspace) as store:
        assert snapshot(store) == before

    # A message someone read in a mail client is still processed: the keyword decides.
    dovecot.append(postfix_bounce("late@example.com", "bulletin@example.org"))
    imap = dovecot.client()
    imap.store("5", "+FLAGS", "(\\Seen)")
    imap.logout()
    later = mailer("bounces", "process", dovecot.url, env=env)
    assert later.stdout.startswith("1 message read: 0 hard, 0 soft, 0 unsubscribed, 1 unmatched")
    assert dovecot.flags()[-1] == {"\\Seen", "$MailerProcessed"}


def test_imap_errors_are_one_line(dovecot: Dovecot, mailer: Invoke) -> None:
    where = f"imaps://127.0.0.1:{dovecot.port}"
    trusted = {"SSL_CERT_FILE": str(dovecot.cafile)}

    raw_user = f"imaps://{USER}@127.0.0.1:{dovecot.port}/Nope"
    folder = mailer("bounces", "process", raw_user,
                    env=trusted | {"MAILER_BOUNCES_IMAP_PASSWORD": PASSWORD})  # fmt: skip
    assert folder.exit_code == 1
    assert "folder Nope refused" in one_line(folder.stderr)

    # The system's CAs do not know the test certificate: production verifies, so it refuses.
    untrusted = mailer("bounces", "process", dovecot.url,
                       env={"MAILER_BOUNCES_IMAP_PASSWORD": PASSWORD})  # fmt: skip
    assert untrusted.exit_code == 1
    assert one_line(untrusted.stderr).startswith(f"error: {where}: TLS certificate not trusted")

    port = closed_port()
    refused = mailer("bounces", "process", f"imaps://u@127.0.0.1:{port}/INBOX",
                     env={"MAILER_BOUNCES_IMAP_PASSWORD": PASSWORD})  # fmt: skip
    assert refused.exit_code == 1
    assert one_line(refused.stderr).startswith(f"error: imaps://127.0.0.1:{port}: cannot connect")

    # Last: Dovecot slows down logins from an address after a failed one.
    wrong = mailer("bounces", "process", dovecot.url,
                   env=trusted | {"MAILER_BOUNCES_IMAP_PASSWORD": "wrong"})  # fmt: skip
    assert wrong.exit_code == 1
    assert one_line(wrong.stderr).startswith(f"error: {where}: login as {USER} or folder INBOX")


# A server that says odd things: a scripted IMAPS server on loopback


class OddImap:
    """Answers as an IMAP server just enough for a login and a SELECT, in a thread: with a
    CAPABILITY holding a Latin-1 byte ("capability"), or refusing the folder with a NUL, an
    escape and a Latin-1 byte ("folder")."""

    def __init__(self, folder: Path, mode: str) -> None:
        self.context, self.mode = server_tls(folder), mode
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        with self.context.wrap_socket(self.listener.accept()[0], server_side=True) as tls:
            reader = tls.makefile("rb")
            tls.sendall(b"* OK ready\r\n")
            while line := reader.readline():
                tag, _, rest = line.rstrip(b"\r\n").partition(b" ")
                command = rest.split(b" ")[0].upper()
                if command == b"CAPABILITY":
                    odd = b" X-CAF\xe9" if self.mode == "capability" else b""
                    tls.sendall(b"* CAPABILITY IMAP4rev1 AUTH=PLAIN" + odd + b"\r\n")
                if command == b"SELECT":
                    tls.sendall(tag + b" NO Dossier inconnu \xe9 \x1b[2J\x1b[31mRED\x00\r\n")
                elif command == b"LOGOUT":
                    tls.sendall(b"* BYE\r\n" + tag + b" OK bye\r\n")
                    return
                else:
                    tls.sendall(tag + b" OK done\r\n")

    def stop(self) -> None:
        self.listener.close()
        self.thread.join(timeout=20)


@pytest.mark.parametrize(
    ("mode", "said"),
    [
        ("capability", "cannot connect: "),
        ("folder", "folder INBOX refused: Dossier inconnu \ufffd"),
    ],
)
def test_an_imap_server_s_odd_bytes_are_one_printable_line(
    mailer: Invoke, workspace: Path, tmp_path: Path, mode: str, said: str
) -> None:
    """Before, a CAPABILITY byte that is not ASCII ended in a traceback, and a refusal's
    escape sequences went to the terminal as they came."""
    server = OddImap(tmp_path, mode)
    env = {"MAILER_BOUNCES_IMAP_PASSWORD": "x", "SSL_CERT_FILE": str(tmp_path / "cert.pem")}
    try:
        result = mailer("bounces", "process", f"imaps://u@localhost:{server.port}/INBOX", env=env)
    finally:
        server.stop()
    assert result.exit_code == 1, result.output
    line = one_line(result.stderr)
    assert said in line
    assert line.isprintable()
