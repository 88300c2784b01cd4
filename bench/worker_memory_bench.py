"""A worker's peak memory against the list's size: `campaigns work` on campaigns of 100,000
and 1,000,000 readers, side by side, its peak RSS read from /proc while it sends.

Run by hand from the repository (postfix's smtp-sink; PostgreSQL's Debian package with
--engine postgresql):
    .venv/bin/python bench/worker_memory_bench.py [--sizes 100000 1000000] [--messages 30000]
Each worker sends --messages messages, then is stopped (Ctrl-C's drain): a worker claims the
same batches wherever it is in a campaign, so its peak is reached early, and then holds.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from send_bench import free_port
from workers_bench import mailer, sink, workspace

from tests.postgres_server import postgres_server

REPORT = Path(__file__).resolve().parent.parent / "examples" / "report.md"


def peak_mb(pid: int) -> float:
    """The process's peak resident set so far (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def sent(folder: Path, env: dict[str, str]) -> int:
    shown = mailer(folder, env, "campaigns", "show", "1", "--json").stdout
    return int(json.loads(shown)["counts"]["sent"])


def measure(folder: Path, env: dict[str, str], messages: int) -> float:
    """Start one worker, let it send ``messages``, stop it; its peak RSS in MB."""
    command = [sys.executable, "-m", "mailer", "--workspace", str(folder), "campaigns", "work", "1"]
    worker = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)  # fmt: skip
    peak = 0.0
    while worker.poll() is None and sent(folder, env) < messages:
        peak = max(peak, peak_mb(worker.pid))
        time.sleep(0.5)
    peak = max(peak, peak_mb(worker.pid)) if worker.poll() is None else peak
    worker.send_signal(signal.SIGINT)
    worker.wait()
    return peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--messages", type=int, default=30_000)
    parser.add_argument("--engine", choices=["sqlite", "postgresql"], default="postgresql")
    args = parser.parse_args()
    port = free_port()
    relay = sink(port, True)
    base = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}
    base |= {"MAILER_SMTP_HOST": "127.0.0.1", "MAILER_SMTP_PORT": str(port),
             "MAILER_SMTP_SECURITY": "none", "MAILER_SMTP_MAX_PER_CONNECTION": "100000000",
             "MAILER_NEWSLETTER_SENDER": "Bench <bench@example.org>",
             "MAILER_NEWSLETTER_POSTAL_ADDRESS": "1 Bench Road, Oslo",
             "MAILER_NEWSLETTER_BASE_URL": "https://bench.example.org"}  # fmt: skip
    server = postgres_server() if args.engine == "postgresql" else None
    peaks: dict[int, float] = {}
    try:
        pg = next(server) if server is not None else None
        with tempfile.TemporaryDirectory() as name:
            for size in args.sizes:
                env = dict(base)
                if pg is not None:
                    env["MAILER_DATABASE_URL"] = pg.create_database()
                folder = Path(name) / str(size)
                workspace(folder, size, env)
                mailer(folder, env, "send", str(REPORT), "--list", "bench", "--yes", "--limit", "1")
                peaks[size] = round(measure(folder, env, args.messages), 1)
    finally:
        relay.terminate()
        relay.wait()
        for _ in server or ():
            pass
    for size, peak in peaks.items():
        print(f"{size:>10} readers: a worker's peak RSS {peak:.1f} MB")
    sizes = sorted(peaks)
    if len(sizes) > 1:
        print(f"largest / smallest list: {peaks[sizes[-1]] / peaks[sizes[0]]:.2f}x the memory"
              f" for {sizes[-1] / sizes[0]:.0f}x the readers ({args.engine})")  # fmt: skip
    print(json.dumps({"engine": args.engine, "peak_rss_mb": peaks, "messages": args.messages}))


if __name__ == "__main__":
    main()
