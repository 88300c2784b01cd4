"""`send --test`: never to an address that was blocked, bounced or erased, whoever types it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE_REPORT
from tests.test_send_cli import cli, command, environment, populate

pytestmark = pytest.mark.usefixtures("engine")


def send_test(workspace: Path, address: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(workspace, "send", str(EXAMPLE_REPORT), "--list", "big", "--test", address),
        env=environment({}), capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def sent(workspace: Path) -> int:
    return (
        len(list((workspace / "outbox" / "new").glob("*")))
        if (workspace / "outbox").exists()
        else 0
    )


def test_a_test_send_refuses_blocked_bounced_and_erased_addresses(tmp_path: Path) -> None:
    populate(tmp_path, 4)
    cli(tmp_path, "subscribers", "block", "reader1@example.org")
    cli(tmp_path, "subscribers", "forget", "reader2@example.org", "--yes")
    cli(tmp_path, "subscribers", "block", "stranger@example.net")  # never a reader
    for address, status in [("reader1@example.org", "blocklisted"),
                            ("Reader2@Example.org", "erased"),
                            ("stranger@example.net", "blocklisted")]:  # fmt: skip
        refused = send_test(tmp_path, address)
        assert refused.returncode == 1, refused.stdout
        [line] = refused.stderr.splitlines()
        assert line.startswith(f"error: --test {address.lower()}: {status};"), line
        assert sent(tmp_path) == 0
    done = send_test(tmp_path, "reader0@example.org")
    assert done.returncode == 0, done.stderr
    assert sent(tmp_path) == 1
