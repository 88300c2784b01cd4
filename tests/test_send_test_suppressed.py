"""`send --test`: never to an address that was blocked, bounced or erased, whoever types it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import EXAMPLE_CSV, EXAMPLE_REPORT, Invoke

pytestmark = pytest.mark.usefixtures("engine")


def sent(workspace: Path) -> int:
    folder = workspace / "outbox" / "new"
    return len(list(folder.iterdir())) if folder.exists() else 0


def test_a_test_send_refuses_blocked_bounced_and_erased_addresses(
    mailer: Invoke, workspace: Path
) -> None:
    assert mailer("subscribers", "import", "ex", str(EXAMPLE_CSV), "--create-list").exit_code == 0
    readers = [line.split(",")[0] for line in EXAMPLE_CSV.read_text().splitlines()[1:4]]
    assert mailer("subscribers", "block", readers[0]).exit_code == 0
    assert mailer("subscribers", "forget", readers[1], "--yes").exit_code == 0
    assert mailer("subscribers", "block", "stranger@example.net").exit_code == 0  # never a reader
    for address, status in [(readers[0], "blocklisted"), (readers[1].upper(), "erased"),
                            ("stranger@example.net", "blocklisted")]:  # fmt: skip
        refused = mailer("send", str(EXAMPLE_REPORT), "--list", "ex", "--test", address)
        assert refused.exit_code == 1, refused.output
        [line] = refused.stderr.splitlines()
        assert line.startswith(f"error: --test {address.lower()}: {status};"), line
        assert sent(workspace) == 0
    done = mailer("send", str(EXAMPLE_REPORT), "--list", "ex", "--test", readers[2])
    assert done.exit_code == 0, done.output
    assert sent(workspace) == 1
