"""Send throughput: Postfix's smtp-source (the limit) first, then mailer's pipeline vs bare
aiosmtplib (and optionally mailmerge), into one sink. Workers: bench/workers_bench.py.

Run by hand, not in tests:  python bench/send_bench.py [-n 20000] [--concurrency 16]
[--rounds 5] [--report example|heavy] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "examples" / "report.md"
SENDER = "bench@example.org"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_listening(port: int, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"sink on port {port} did not start")


AIOSMTPD_SINK = """
import sys, threading
from aiosmtpd.controller import Controller
class Sink:
    async def handle_DATA(self, server, session, envelope):
        return "250 OK"
c = Controller(Sink(), hostname="127.0.0.1", port=int(sys.argv[1]))
c.start()
threading.Event().wait()
"""


def physical_limit(folder: Path, port: int, count: int, connections: int) -> dict[str, float]:
    """Postfix's smtp-source: ``count`` copies of mailer's own message over ``connections``
    kept-open sessions into the same sink, as fast as it goes: what no sender beats here."""
    source = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
    message = sample_message(folder).replace(b"\r\n", b"\n")  # it appends CRLF to each line
    (folder / "limit.eml").write_bytes(message)
    command = [source, "-d", "-s", str(connections), "-m", str(count), "-f", SENDER,
               "-t", "reader@example.org", "-F", str(folder / "limit.eml"),
               f"127.0.0.1:{port}"]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    rate = round(count / elapsed, 1)
    return {"messages": count, "seconds": round(elapsed, 3), "per_second": rate,
            "cpu_us_per_message": 0.0, "peak_rss_mb": 0.0}  # fmt: skip


def start_sink(kind: str, port: int) -> tuple[subprocess.Popen[bytes], str]:
    sink = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
    if kind in ("auto", "postfix") and Path(sink).exists():
        process = subprocess.Popen([sink, "-u", "nobody", f"127.0.0.1:{port}", "1000"])
        name = "postfix smtp-sink"
    elif kind == "postfix":
        sys.exit("smtp-sink not found: apt-get install -y postfix")
    else:
        process = subprocess.Popen([sys.executable, "-c", AIOSMTPD_SINK, str(port)])
        name = "aiosmtpd sink in a separate process (postfix's smtp-sink not installed)"
    wait_listening(port)
    return process, name


def report_path(folder: Path, kind: str) -> Path:
    """examples/report.md, or the heavy one (a 500 KB PDF, two images) made in the workspace."""
    return folder / "heavy" / "report.md" if kind == "heavy" else REPORT


def make_workspace(folder: Path, count: int, kind: str = "example") -> None:
    if kind == "heavy":
        from render_bench import write_heavy_report  # beside this file

        write_heavy_report(folder / "heavy")
    from mailer.audience import lists, subscriptions
    from mailer.db.sqlite import SqliteDatabase as Database
    from mailer.models import Candidate

    with Database(folder / "subscribers" / "mailer.db") as store:
        bench = lists.create(store, "bench", "Bench readers")
        for start in range(0, count, 5000):
            chunk = [
                Candidate(f"reader{i}@example{i % 50}.org", False, f"Reader {i}", {"city": "Oslo"})
                for i in range(start, min(count, start + 5000))
            ]
            subscriptions.add(store, bench, chunk)


def run_loop(loop: str, main: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    if loop == "uvloop":
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(main())
    return asyncio.run(main())


def measured(work: Callable[[], int], who: int = resource.RUSAGE_SELF) -> dict[str, float]:
    """Run ``work`` (returns messages sent) and report wall time, CPU time and peak RSS of
    ``who``: this process, or its children for a peer run as a separate program."""
    before, helpers_before = resource.getrusage(who), resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    count = work()
    elapsed = time.perf_counter() - start
    after, helpers_after = resource.getrusage(who), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    result = {
        "messages": count,
        "seconds": round(elapsed, 3),
        "per_second": round(count / elapsed, 1),
        "cpu_us_per_message": round(cpu / max(count, 1) * 1e6, 1),
        "peak_rss_mb": round(after.ru_maxrss / 1024, 1),
    }
    if who == resource.RUSAGE_SELF:  # the DKIM signing processes, when there are any
        helpers = (helpers_after.ru_utime - helpers_before.ru_utime) + (
            helpers_after.ru_stime - helpers_before.ru_stime
        )
        result["signer_cpu_us_per_message"] = round(helpers / max(count, 1) * 1e6, 1)
    return result


def phase_mailer(
    folder: Path,
    port: int,
    concurrency: int,
    loop: str,
    dkim: str = "",
    processes: int = 0,
    kind: str = "example",
) -> dict[str, float]:
    from mailer import config
    from mailer.compose.report import load_report
    from mailer.db.sqlite import SqliteDatabase as Database
    from mailer.send import service
    from mailer.send.recipients import audience

    env = {
        "MAILER_SMTP_HOST": "127.0.0.1",
        "MAILER_SMTP_PORT": str(port),
        "MAILER_SMTP_SECURITY": "none",
        "MAILER_SMTP_MAX_PER_CONNECTION": "100000000",
        # a send over SMTP refuses `mailer init`'s placeholders
        "MAILER_NEWSLETTER_SENDER": f"Bench <{SENDER}>",
        "MAILER_NEWSLETTER_POSTAL_ADDRESS": "1 Bench Road, Oslo",
        "MAILER_NEWSLETTER_BASE_URL": "https://bench.example.org",
    }
    if dkim:
        from mailer.send.dkim_keys import write_key

        write_key(folder / f"{dkim}.pem", dkim, replace=True)
        env |= {"MAILER_DKIM_DOMAIN": "example.org", "MAILER_DKIM_KEY_FILE": f"{dkim}.pem",
                "MAILER_DKIM_PROCESSES": str(processes)}  # fmt: skip
    current = config.load(folder, env)

    checking = [0.0]

    def work() -> int:
        # The sending service the CLI calls: plan (which checks every reader), then store, lock
        # and send the campaign.
        with Database(current.database_path) as database:
            session = service.Session(current, database)
            overrides = service.Overrides(
                concurrency=concurrency, rate=0.0, again=True
            )  # one report, many rows
            start = time.perf_counter()
            plan = service.plan_campaign(
                session,
                load_report(report_path(folder, kind)),
                audience(database, ["bench"]),
                overrides,
            )
            checking[0] = time.perf_counter() - start
            outcome = run_loop(loop, lambda: service.send_campaign(session, plan))
            sent = int(outcome.progress.counts["sent"])
            assert sent == plan.readers and outcome.stop is None, outcome.progress.counts
            return sent

    result = measured(work)
    result["check_seconds"] = round(checking[0], 3)
    result["send_per_second"] = round(result["messages"] / (result["seconds"] - checking[0]), 1)
    return result


def sample_message(folder: Path, kind: str = "example") -> bytes:
    from mailer import config
    from mailer.compose.report import load_report
    from mailer.models import MailingList, Reader
    from mailer.send.messages import MessageFactory, Recipe

    current = config.load(folder, {})
    bench = MailingList(1, "bench", "Bench", False)
    factory = MessageFactory(Recipe(current, load_report(report_path(folder, kind)), bench, "b"))
    reader = Reader(1, "reader1@example1.org", "Reader 1", {"city": "Oslo"})
    return b"".join(factory.make(reader, 1)[0])


def phase_bare(
    folder: Path, port: int, concurrency: int, count: int, loop: str, kind: str = "example"
) -> dict[str, float]:
    import aiosmtplib

    message = sample_message(folder, kind)

    async def worker(share: int) -> int:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False, timeout=30)
        await client.connect()
        for i in range(share):
            await client.sendmail(SENDER, [f"reader{i}@example.org"], message)
        await client.quit()
        return share

    async def main() -> int:
        shares = [count // concurrency + (1 if i < count % concurrency else 0)
                  for i in range(concurrency)]  # fmt: skip
        return sum(await asyncio.gather(*(worker(s) for s in shares)))

    result = measured(lambda: run_loop(loop, main))
    result["message_bytes"] = len(message)
    return result


def phase_mailmerge(folder: Path, port: int, count: int) -> dict[str, float]:
    venv = folder / "mailmerge-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "mailmerge==2.3.0"], check=True)
    work = folder / "mailmerge"
    work.mkdir()
    (work / "mailmerge_server.conf").write_text(
        f"[smtp_server]\nhost = 127.0.0.1\nport = {port}\nsecurity = Never\nusername = None\n"
    )
    body = (
        REPORT.read_text(encoding="utf-8")
        .split("---", 2)[2]
        .replace("{{ subscriber.name", "{{ name")
    )
    (work / "mailmerge_template.txt").write_text(
        # Markdown, so mailmerge also sends multipart text + HTML, like mailer.
        f"TO: {{{{email}}}}\nSUBJECT: Bench\nFROM: {SENDER}\nCONTENT-TYPE: text/markdown\n\n{body}",
        encoding="utf-8",
    )
    with (work / "mailmerge_database.csv").open("w") as handle:
        handle.write("email,name\n")
        handle.writelines(f"reader{i}@example.org,Reader {i}\n" for i in range(count))
    command = [
        str(venv / "bin" / "mailmerge"),
        "--no-dry-run",
        "--no-limit",
        "--output-format",
        "raw",
    ]

    def run() -> int:
        subprocess.run(command, cwd=work, check=True, stdout=subprocess.DEVNULL)
        return count

    return measured(run, resource.RUSAGE_CHILDREN)


def child(args: argparse.Namespace) -> None:
    folder = Path(args.workspace)
    if args.fail:
        raise RuntimeError("forced failure (--fail-row)")
    if args.phase == "mailer":
        result = phase_mailer(folder, args.port, args.concurrency, args.loop, kind=args.report)
    elif args.phase.startswith("dkim-"):
        dkim = args.phase.removeprefix("dkim-")
        result = phase_mailer(
            folder, args.port, args.concurrency, args.loop, dkim, args.dkim_processes, args.report
        )
    elif args.phase == "bare":
        result = phase_bare(folder, args.port, args.concurrency, args.n, args.loop, args.report)
    else:
        result = phase_mailmerge(folder, args.port, args.n)
    print(json.dumps(result))


class RowFailed(Exception):
    """A phase's process failed; the message is the last line it wrote to stderr."""


def in_child(
    args: argparse.Namespace, phase: str, folder: Path, port: int, fail: bool = False
) -> dict[str, float]:
    """Each phase runs in its own process so its CPU time and peak RSS are its own."""
    command = [sys.executable, __file__, "--phase", phase, "--workspace", str(folder),
               "--port", str(port), "-n", str(args.n), "--concurrency", str(args.concurrency),
               "--loop", args.loop, "--dkim-processes", str(args.dkim_processes),
               "--report", args.report]  # fmt: skip
    done = subprocess.run(command + ["--fail"] * fail, capture_output=True, text=True, check=False)
    if done.returncode:
        lines = done.stderr.strip().splitlines() or [f"exit status {done.returncode}"]
        raise RowFailed(lines[-1])
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


LIMIT = "smtp-source (the limit)"  # the first row, with postfix's smtp-sink
ROWS = {"mailer": "mailer", "mailer + DKIM rsa": "dkim-rsa",
        "mailer + DKIM ed25519": "dkim-ed25519", "bare aiosmtplib": "bare"}  # fmt: skip
RATIOS = {"mailer_vs_bare": ("mailer", "bare aiosmtplib", "per_second"),
          "mailer_sending_vs_bare": ("mailer", "bare aiosmtplib", "send_per_second"),
          "rsa_signed_vs_unsigned": ("mailer + DKIM rsa", "mailer", "per_second"),
          "ed25519_signed_vs_unsigned": ("mailer + DKIM ed25519", "mailer", "per_second"),
          "mailer_vs_mailmerge": ("mailer", "mailmerge 2.3.0", "per_second"),
          "mailer_vs_limit": ("mailer", LIMIT, "per_second")}  # fmt: skip


def summarise(rounds: list[dict[str, dict[str, float]]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Each row as in the round where its throughput was the median one, and each ratio per
    round, from the rounds that have both rows (a failed row, or mailmerge after round 1)."""
    rows = {}
    for name in dict.fromkeys(name for r in rounds for name in r):
        runs = sorted((r[name] for r in rounds if name in r), key=lambda row: row["per_second"])
        rows[name] = runs[(len(runs) - 1) // 2]
    ratios = {}
    for label, (top, bottom, key) in RATIOS.items():
        each = [round(r[top][key] / r[bottom]["per_second"], 3)
                for r in rounds if top in r and bottom in r]  # fmt: skip
        if each:
            ratios[label] = each
    return rows, ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20_000, help="recipients (default 20,000)")
    parser.add_argument("--concurrency", type=int, default=16)
    try:
        import uvloop  # noqa: F401

        default_loop = "uvloop"
    except ImportError:
        default_loop = "asyncio"
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default=default_loop)
    parser.add_argument("--dkim-processes", type=int, default=0,
                        help="[dkim] processes for the signed rows (0: automatic)")  # fmt: skip
    parser.add_argument("--sink", choices=["auto", "postfix", "aiosmtpd"], default="auto")
    parser.add_argument("--peer-mailmerge", action="store_true", help="add mailmerge 2.3.0")
    parser.add_argument("--report", choices=["example", "heavy"], default="example",
                        help="heavy: examples/report.md with a 500 KB PDF and two images,"
                        " hosted (mailmerge still sends the example)")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=1, help="repeat all rows, interleaved")
    parser.add_argument("--json", action="store_true", help="print one JSON object only")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--workspace", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--fail", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--fail-row", default="", help=argparse.SUPPRESS)  # tests: fail NAME
    args = parser.parse_args()
    if args.phase:
        child(args)
        return
    port = free_port()
    sink, sink_name = start_sink(args.sink, port)
    try:
        with tempfile.TemporaryDirectory() as name:
            folder = Path(name)
            make_workspace(folder, args.n, args.report)
            rounds: list[dict[str, dict[str, float]]] = []
            failures: list[str] = []
            peers = {"mailmerge 2.3.0": "mailmerge"} if args.peer_mailmerge else {}
            for number in range(1, args.rounds + 1):  # interleaved: a round's ratios share
                rounds.append({})  # conditions; the peer installs itself, so it runs once
                if sink_name.startswith("postfix") and Path("/usr/sbin/smtp-source").exists():
                    rounds[-1][LIMIT] = physical_limit(folder, port, args.n, args.concurrency)
                for name, phase in (ROWS | peers if number == 1 else ROWS).items():
                    try:
                        fail = name == args.fail_row
                        rounds[-1][name] = in_child(args, phase, folder, port, fail)
                    except RowFailed as error:
                        failures.append(f"{name} failed in round {number}: {error}")
    finally:
        sink.terminate()
        sink.wait()

    rows, ratios = summarise(rounds)
    message_bytes = next((r["message_bytes"] for r in rows.values() if "message_bytes" in r), None)
    result: dict[str, Any] = {
        "recipients": args.n, "concurrency": args.concurrency, "loop": args.loop,
        "sink": sink_name, "cpus": os.cpu_count(), "python": sys.version.split()[0],
        "report": args.report,
        "message_bytes": message_bytes, "rounds": args.rounds, "rows": rows, **ratios,
        "failures": failures,
    }  # fmt: skip
    if args.json:
        print(json.dumps(result))
        sys.exit(1 if failures else 0)
    print(f"{args.n} recipients, {args.concurrency} connections, {args.loop} loop, {sink_name},"
          f" {result['message_bytes']} byte message ({args.report} report),"
          f" {os.cpu_count()} CPUs")  # fmt: skip
    print(f"{'':<22}{'msg/s':>10}{'CPU µs/msg':>12}{'+signers':>10}{'peak RSS MB':>13}"
          f"{'seconds':>9}")  # fmt: skip
    for name, row in rows.items():
        signers = row.get("signer_cpu_us_per_message") or 0
        print(f"{name:<22}{row['per_second']:>10.0f}{row['cpu_us_per_message']:>12.0f}"
              f"{signers:>10.0f}{row['peak_rss_mb']:>13.1f}{row['seconds']:>9.1f}")  # fmt: skip
    if args.rounds > 1:
        print(f"(each row: the round with its median throughput, of {args.rounds} rounds)")
    if "mailer" in rows:
        check = rows["mailer"].get("check_seconds", 0.0)
        print(f"mailer checked every reader before sending in {check:.2f} s (in the row above)")
    for label, key in (("mailer / bare aiosmtplib", "mailer_vs_bare"),
                       ("mailer, sending only / bare", "mailer_sending_vs_bare"),
                       ("DKIM RSA 2048 signed / unsigned", "rsa_signed_vs_unsigned"),
                       ("DKIM Ed25519 signed / unsigned", "ed25519_signed_vs_unsigned"),
                       ("mailer / mailmerge", "mailer_vs_mailmerge"),
                       ("mailer / smtp-source, the limit", "mailer_vs_limit")):  # fmt: skip
        if key in result:
            each = ", ".join(f"{x:.2f}" for x in result[key])
            print(f"{label} = {statistics.median(result[key]):.2f}x (per round: {each})")
    for failure in failures:
        print(failure)
    print(json.dumps(result))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
