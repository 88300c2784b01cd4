"""The send pipeline: producer, workers on persistent connections, rate limit, retries, writer."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Iterable
from typing import Any

from mailer.errors import ConnectionLost, MailerError, TransportError, WorkerError
from mailer.models import Reply
from mailer.send_types import (
    Build,
    Connection,
    DeliveryLog,
    Progress,
    Queued,
    Ready,
    Recipient,
    Render,
    Result,
    SendOptions,
    Transport,
)

# RFC 3463 codes for a bad destination mailbox; 5.1.7 and 5.1.8 are about the sender instead.
NO_SUCH_USER = re.compile(r"\b5\.1\.(?:1|2|3|6|10)\b")


class RateLimiter:
    """Spaces sends ``1/rate`` seconds apart across all workers; 0 means no limit."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.next = time.monotonic()

    async def acquire(self) -> None:
        if not self.interval:
            return
        now = time.monotonic()
        slot = max(self.next, now)
        self.next = slot + self.interval
        if slot > now:
            await asyncio.sleep(slot - now)


class Campaign:
    """Runs one delivery pass over a log; ``stop()`` drains, ``abort()`` cancels in-flight work."""

    def __init__(
        self,
        log: DeliveryLog,
        transport: Transport,
        build: Build,
        options: SendOptions,
        total: int,
        on_progress: Callable[[Progress], None] = lambda _: None,
    ) -> None:
        self.log, self.transport, self.build, self.options = log, transport, build, options
        self.on_progress = on_progress
        self.progress = Progress(total=min(total, options.limit) if options.limit else total)
        self.queue: asyncio.Queue[Queued] = asyncio.Queue(maxsize=4 * options.concurrency)
        self.limiter = RateLimiter(options.rate)
        self.unrecorded: list[Result] = []
        self.outstanding = 0
        self.producing = True
        self.stopping = False
        self.consecutive_failures = 0
        self.idle = asyncio.Event()
        self.retries: set[asyncio.Task[None]] = set()
        self.retrying: set[int] = set()  # deferred in this run, with a retry still to come
        self.workers: list[asyncio.Task[None]] = []

    def stop(self, reason: str = "stopped by the user") -> None:
        if not self.stopping:
            self.stopping = True
            self.progress.stopped_reason = reason
            for task in self.retries:
                task.cancel()
            self.idle.set()

    def abort(self) -> None:
        self.stop("aborted by the user")
        for task in self.workers:
            task.cancel()

    async def run(self) -> Progress:
        """Deliver everything pending; returns the final counts. Raises TransportError if the
        server cannot be reached before anything is recorded."""
        connecting = asyncio.create_task(self.transport.connect())
        stopped = asyncio.create_task(self.idle.wait())
        await asyncio.wait({connecting, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if not connecting.done():  # Ctrl-C while connecting: leave before anything is recorded
            connecting.cancel()
            return self.progress
        first = connecting.result()
        self.log.start()
        producer = asyncio.create_task(self._produce())
        self.workers = [
            asyncio.create_task(self._work(first if i == 0 else None))
            for i in range(self.options.concurrency)
        ]
        ticker = asyncio.create_task(self._tick())
        try:
            await self.idle.wait()
        finally:
            self.producing = False
            producer.cancel()
            for task in self.retries:
                task.cancel()
            if self.stopping and self.progress.stopped_reason == "aborted by the user":
                for task in self.workers:
                    task.cancel()
            else:
                for _ in self.workers:
                    self.queue.put_nowait(_STOP) if not self.queue.full() else None
            await asyncio.gather(*self.workers, producer, return_exceptions=True)
            ticker.cancel()
            # Retries that never ran stay deferred, as the database says: they count as done.
            self.progress.final_deferred += len(self.retrying)
            try:
                self._flush()
            except Exception as error:
                self.stop(f"stopped by an error: {error}")
                self.progress.stopped_reason += (
                    f"; {len(self.unrecorded)} results not recorded, sent again on resume"
                )
            try:
                self.log.finish(self.stopping, self.progress.stopped_reason)
            finally:
                self.on_progress(self.progress)
        return self.progress

    async def _produce(self) -> None:
        try:
            after, remaining = 0, self.options.limit or -1
            while not self.stopping and remaining:
                page = self.log.pending(after, 500 if remaining < 0 else min(500, remaining))
                if not page:
                    break
                for recipient in page:
                    after = recipient.subscriber_id
                    if self.stopping:
                        break
                    if not recipient.eligible:
                        skipped = Result(recipient.subscriber_id, "skipped", recipient.attempts,
                                         text="no longer subscribed")  # fmt: skip
                        self._result(skipped)
                    else:
                        self.outstanding += 1
                        await self._enqueue(recipient)
                    remaining -= 1
                    if not remaining:
                        break
        except Exception as error:  # a store that cannot be read: stop, keep what is recorded
            self.stop(f"stopped by an error: {error}")
        finally:
            self.producing = False
            self._maybe_idle()

    async def _enqueue(self, recipient: Recipient) -> None:
        """Build the reader's message (its signature may still be on the way) and queue it."""
        try:
            message, message_id = self.build(recipient)
        except WorkerError:
            raise  # not this reader's fault: the campaign stops, the reader stays queued
        except MailerError as error:
            self._finish(recipient, Reply(554, f"not rendered: {error}"), counted_failure=False)
            return
        await self.queue.put((recipient, message, message_id))

    def _maybe_idle(self) -> None:
        if not self.producing and self.outstanding == 0:
            self.idle.set()

    async def _work(self, connection: Connection | None) -> None:
        sent_here = 0
        try:
            while not self.stopping:
                item = await self.queue.get()
                if item is _STOP or self.stopping:
                    break
                recipient, pending, message_id = item
                try:
                    message = await pending
                except WorkerError:
                    raise
                except MailerError as error:  # built in a worker process: this reader only
                    self._finish(recipient, Reply(554, f"not rendered: {error}"), "", False)
                    continue
                if connection is None or sent_here >= self.options.max_per_connection:
                    if connection is not None:
                        await connection.close()
                    connection, sent_here = None, 0
                    connection = await self._reconnect(recipient)
                    if connection is None:
                        continue
                outcome = await self._deliver(connection, recipient, message, message_id)
                sent_here += 1
                if outcome is None:  # the connection dropped: retry once on a new one
                    await connection.close()
                    connection = await self._reconnect(recipient)
                    if connection is None:
                        continue
                    outcome = await self._deliver(connection, recipient, message, message_id)
                    if outcome is None:
                        await connection.close()
                        connection = None
                        self._finish(recipient, Reply(421, "connection lost twice"))
        except Exception as error:
            # A failure no reply explains (a full outbox disk, a bug): stop the campaign with the
            # reason; the message in hand stays queued and what was recorded is kept.
            self.stop(f"stopped by an error: {error or type(error).__name__}")
        finally:
            if connection is not None:
                await connection.close()

    async def _reconnect(self, recipient: Recipient) -> Connection | None:
        try:
            return await self.transport.connect()
        except TransportError as error:
            self._finish(recipient, Reply(421, f"cannot connect: {error.reason}"))
            return None

    async def _deliver(
        self, connection: Connection, recipient: Recipient, message: bytes, message_id: str
    ) -> bool | None:
        """Send one message; None means the connection dropped before an answer."""
        await self.limiter.acquire()
        try:
            sender = self.options.sender_for(recipient) if self.options.sender_for else None
            reply = await connection.send(sender or self.options.sender, recipient.email, message,
                                          recipient.smtputf8)  # fmt: skip
        except ConnectionLost:
            self._connection_failure()
            return None
        self._finish(recipient, reply, message_id)
        return True

    def _connection_failure(self) -> None:
        self.consecutive_failures += 1
        if self.consecutive_failures >= self.options.max_consecutive_failures:
            self.stop(f"paused after {self.consecutive_failures} failures in a row")

    def _finish(
        self, recipient: Recipient, reply: Reply, message_id: str = "", counted_failure: bool = True
    ) -> None:
        attempts = recipient.attempts + 1
        if reply.accepted:
            self.consecutive_failures = 0
            status = "sent"
        elif reply.permanent and reply.stage != "mail":
            status = "failed"
        else:  # temporary, or the server refused our sender: not this reader's fault
            status = "deferred"
        if status != "sent" and counted_failure:
            self._connection_failure()
        bounced = (
            status == "failed"
            and bool(NO_SUCH_USER.search(reply.text))
            and "sender" not in reply.text.lower()
        )
        result = Result(recipient.subscriber_id, status, attempts, reply.code, reply.text[:500],
                        message_id if status == "sent" else "", bounced)  # fmt: skip
        retry = status == "deferred" and attempts < self.options.max_attempts and not self.stopping
        self._result(result, final=not retry)
        if retry:
            delay = self.options.retry_delay * 2 ** (attempts - 1)
            task = asyncio.create_task(self._retry_later(recipient, attempts, delay))
            self.retries.add(task)
            task.add_done_callback(self.retries.discard)
        else:
            self.outstanding -= 1
            self._maybe_idle()

    async def _retry_later(self, recipient: Recipient, attempts: int, delay: float) -> None:
        self.progress.waiting_retry += 1
        try:
            await asyncio.sleep(delay)
        finally:
            self.progress.waiting_retry -= 1
        again = Recipient(recipient.subscriber_id, recipient.email, recipient.name,
                          recipient.attributes, recipient.smtputf8, attempts)  # fmt: skip
        try:
            await self._enqueue(again)
        except Exception as error:  # a worker or the store failed: stop, keep what is recorded
            self.stop(f"stopped by an error: {error or type(error).__name__}")

    def _result(self, result: Result, final: bool = True) -> None:
        if result.subscriber_id in self.retrying:  # this attempt supersedes its deferral
            self.retrying.discard(result.subscriber_id)
            self.progress.counts["deferred"] -= 1
        if result.status == "deferred" and not final:
            self.retrying.add(result.subscriber_id)
        self.progress.counts[result.status] += 1
        if result.status == "deferred" and final:
            self.progress.final_deferred += 1
        self.unrecorded.append(result)
        if len(self.unrecorded) >= self.options.batch:
            self._flush()

    def _flush(self) -> None:
        if self.unrecorded:
            self.log.record(self.unrecorded)  # one transaction: on failure the batch is kept
            self.unrecorded = []

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(0.05)
            try:
                self._flush()
            except Exception as error:
                self.stop(f"stopped by an error: {error}")
            self.on_progress(self.progress)


_STOP: Any = (Recipient(0, "", "", {}, False), Ready(b""), "")


def check_all(recipients: Iterable[Recipient], build: Render) -> int:
    """Build every message without sending (a dry run); raise on the first that fails."""
    count = 0
    for recipient in recipients:
        build(recipient)
        count += 1
    return count
