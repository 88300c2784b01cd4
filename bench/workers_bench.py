"""Sending with workers, side by side in one run: Postfix's smtp-source (the physical limit) and
`mailer send --workers N` into the same smtp-sink, pipelining on and off, SQLite and PostgreSQL.

Run by hand from the repository (needs postfix for smtp-sink and smtp-source, and PostgreSQL's
Debian package for the PostgreSQL rows):
    .venv/bin/python bench/workers_bench.py [-n 50000] [--workers 1 2] [--engines sqlite postgresql]
        [--analyze-every SECONDS]
Each row's rate is the readers over the seconds from the moment `send` names its transport (every
reader's message is checked by then; it stores the campaign and sends) to its exit: worker start-up
included. Quote the ratios to the limit, from one run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from send_bench import REPORT, SENDER, free_port, physical_limit, wait_listening

from tests.postgres_server import postgres_server

SMTP_SINK = "/usr/sbin/smtp-sink"
CONNECTIONS = 16


def sink(port: int, pipelining: bool) -> subprocess.Popen[bytes]:
    """Postfix's smtp-sink on ``port``; ``-p``: it does not offer PIPELINING."""
    flags = [] if pipelining else ["-p"]
    process = subprocess.Popen([SMTP_SINK, "-u", "nobody", *flags, f"127.0.0.1:{port}", "1000"])
    wait_listening(port)
    return process


def mailer(folder: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "mailer", "--workspace", str(folder), *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, check=True)


def workspace(folder: Path, count: int, env: dict[str, str]) -> None:
    folder.mkdir()
    readers = folder / "readers.csv"
    with readers.open("w") as handle:
        handle.write("email,name,city\n")
        handle.writelines(f"reader{i}@example{i % 50}.org,Reader {i},Oslo\n" for i in range(count))
    mailer(folder, env, "subscribers", "import", "bench", str(readers), "--create-list")


@contextmanager
def analysing(url: str, every: float) -> Iterator[None]:
    """``ANALYZE deliveries`` every ``every`` seconds meanwhile, as PostgreSQL's autovacuum
    does during a long campaign: its planner then sees the campaign's rows as they were."""
    if not url or every <= 0:
        yield
        return
    done = threading.Event()

    def loop() -> None:
        with psycopg.connect(url, autocommit=True) as connection:
            while not done.wait(every):
                connection.execute("ANALYZE deliveries")

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def send(folder: Path, env: dict[str, str], workers: int, analyze_every: float = 0.0) -> float:
    """One campaign to every reader by ``workers`` processes: readers per second, from when
    the command names the transport (every reader checked; then it stores, sends) to its end."""
    command = [sys.executable, "-m", "mailer", "--workspace", str(folder), "send", str(REPORT),
               "--list", "bench", "--yes", "--again",
               "--concurrency", str(CONNECTIONS // max(workers, 1))]  # fmt: skip
    if workers:  # 0: the one process of a plain send
        command += ["--workers", str(workers)]
    child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)  # fmt: skip
    assert child.stdout is not None
    stored = None
    with analysing(env.get("MAILER_DATABASE_URL", ""), analyze_every):
        for line in child.stdout:
            if line.startswith("transport:"):  # every reader is checked by now: stores, sends
                stored = time.perf_counter()
            if ": done;" in line:  # with workers: "campaign 1: done; 5000 sent, ..."
                sent = int(line.split("; ")[1].split()[0])
            elif " sent, " in line and line.split()[0].isdigit():  # plain: "5000 sent, ..."
                sent = int(line.split()[0])
        child.wait()
    ended = time.perf_counter()
    if child.returncode or stored is None:
        sys.exit(f"send failed: {child.stderr.read() if child.stderr else ''}")
    return sent / (ended - stored)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=50_000, help="readers (default 50,000)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2],
                        help="0: a plain send, in one process")  # fmt: skip
    parser.add_argument("--engines", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument("--analyze-every", type=float, default=0.0, metavar="SECONDS",
                        help="PostgreSQL: ANALYZE deliveries this often while sending, as"
                        " autovacuum does in a long campaign (default: never)")  # fmt: skip
    args = parser.parse_args()
    base = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}
    base |= {"MAILER_SMTP_HOST": "127.0.0.1", "MAILER_SMTP_SECURITY": "none",
             "MAILER_SMTP_MAX_PER_CONNECTION": "100000000",
             "MAILER_NEWSLETTER_SENDER": f"Bench <{SENDER}>",
             "MAILER_NEWSLETTER_POSTAL_ADDRESS": "1 Bench Road, Oslo",
             "MAILER_NEWSLETTER_BASE_URL": "https://bench.example.org"}  # fmt: skip
    ports = {True: free_port(), False: free_port()}
    sinks = [sink(port, pipelining) for pipelining, port in ports.items()]
    server = postgres_server() if "postgresql" in args.engines else None
    rows: dict[str, float] = {}
    try:
        pg = next(server) if server else None
        with tempfile.TemporaryDirectory() as name:
            folder = Path(name)
            (folder / "subscribers").mkdir()
            rows["smtp-source (the limit)"] = physical_limit(
                folder, ports[True], args.n, CONNECTIONS
            )["per_second"]
            for engine in args.engines:
                env = dict(base)
                if engine == "postgresql" and pg is not None:
                    env["MAILER_DATABASE_URL"] = pg.create_database()
                workspace(folder / engine, args.n, env)
                for workers in args.workers:
                    for pipelining in (True, False):
                        env["MAILER_SMTP_PORT"] = str(ports[pipelining])
                        who = f"{workers} worker{'s' * (workers > 1)}" if workers else "send"
                        label = f"{engine}, {who}, pipelining {'on' if pipelining else 'off'}"
                        rows[label] = send(folder / engine, env, workers, args.analyze_every)
    finally:
        for process in sinks:
            process.terminate()
            process.wait()
        if server is not None:
            for _ in server:  # stops it and removes its folder
                pass
    top = rows["smtp-source (the limit)"]
    print(f"{args.n} readers, {CONNECTIONS} connections in all, postfix smtp-sink,"
          f" {os.cpu_count()} CPUs")  # fmt: skip
    for label, rate in rows.items():
        print(f"{label:<42}{rate:>9.0f} msg/s{rate / top:>8.2f}x the limit")
    print(json.dumps({"readers": args.n, "cpus": os.cpu_count(), "rows": rows}))


if __name__ == "__main__":
    main()
