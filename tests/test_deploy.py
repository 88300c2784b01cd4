"""The systemd unit in deploy/ runs `mailer serve` as a dedicated user, restarts it on failure,
and stops it the way the service expects (SIGTERM, time to finish the messages in flight)."""

from __future__ import annotations

import configparser
import shlex
import subprocess
import sys

from tests.conftest import ROOT

UNIT = ROOT / "deploy" / "mailer.service"


def test_the_unit_runs_serve_as_its_own_user_and_restarts_on_failure() -> None:
    unit = configparser.ConfigParser(interpolation=None, strict=False)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string(UNIT.read_text(encoding="utf-8"))
    service = unit["Service"]
    assert service["User"] == "mailer" and service["Group"] == "mailer"
    assert service["Restart"] == "on-failure" and service["KillSignal"] == "SIGTERM"
    # SIGTERM to the main process only: a signalled message-building process would stop the
    # campaign with an error instead of pausing it to go on at the next start.
    assert service["KillMode"] == "mixed"
    assert int(service["TimeoutStopSec"]) >= 45 + 20  # the scheduler's wait and the web's
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    program, *args = shlex.split(service["ExecStart"])
    assert program.endswith("/bin/mailer") and "serve" in args
    # The same arguments, given to this checkout's CLI, are understood (--help stops there).
    done = subprocess.run([sys.executable, "-m", "mailer", *args, "--help"],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "--scheduler" in done.stdout
