"""The send pipeline: producer, workers on persistent connections, rate limit, retries, writer."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from mailer.errors import ConnectionLost, DiskFullError, MailerError, TransportError, WorkerError
from mailer.models import Reader, Reply
from mailer.send import retry
from mailer.send.connecting import open_first
from mailer.send.rate import RateLimiter
from mailer.send.types import (
    Build,
    Connection,
    Control,
    Delivery,
    DeliveryLog,
    Message,
    Progress,
    Queued,
    Ready,
    Result,
    SendOptions,
    Stop,
    StopReason,
    Transport,
)
from mailer.send.writer import ResultWriter

# The pipeline talks to a Transport and a DeliveryLog; it knows neither SQL nor aiosmtplib.


class Pipeline:
    """Runs one delivery pass over a log; ``stop()`` drains, ``abort()`` cancels in-flight work
    (or a Control given by the caller does)."""

    def __init__(
        self,
        log: DeliveryLog,
        transport: Transport,
        build: Build,
        options: SendOptions,
        total: int,
        on_progress: Callable[[Progress], None] = lambda _: None,
        control: Control | None = None,
    ) -> None:
        self.log, self.transport, self.build, self.options = log, transport, build, options
        self.on_progress = on_progress
        self.progress = Progress(total=min(total, options.limit) if options.limit else total)
        self.queue: asyncio.Queue[Queued] = asyncio.Queue(maxsize=4 * options.concurrency)
        self.limiter = RateLimiter(options.rate)
        self.writer = ResultWriter(log, self.progress, options.batch)
        self.outstanding = 0
        self.failures = retry.FailuresInARow(options.max_consecutive_failures)
        self.producing, self.stopping = True, False
        self.idle = asyncio.Event()
        self.retries: set[asyncio.Task[None]] = set()
        self.workers: list[asyncio.Task[None]] = []
        self.control = control or Control()

    def stop(self) -> None:
        """Stop taking new work; what is in flight finishes and is recorded."""
        self.control.stop()

    def abort(self) -> None:
        """Cancel the work in flight too; what was recorded stays."""
        self.control.abort()

    def _halt(self, reason: StopReason, detail: str = "") -> None:
        if not self.stopping:
            self.stopping = True
            self.progress.stop = Stop(reason, detail)
            for task in self.retries:
                task.cancel()
            self.idle.set()

    def _error(self, error: BaseException) -> None:
        if isinstance(error, DiskFullError):
            self._halt(StopReason.DISK_FULL, error.where)
        else:
            self._halt(StopReason.ERROR, str(error) or type(error).__name__)

    def _on_control(self, reason: StopReason) -> None:
        self._halt(reason)
        if reason is StopReason.ABORTED:
            for task in self.workers:
                task.cancel()

    async def run(self, first: Connection | None = None) -> Progress:
        """Deliver everything pending over ``first`` and more connections; returns the final
        counts. Without ``first``, raises TransportError if the server cannot be reached
        before anything is recorded."""
        if first is None:
            first = await open_first(self.transport, self.control)
            if first is None:
                self.progress.stop = Stop(self.control.requested or StopReason.USER)
                return self.progress
        self.control.listeners.append(self._on_control)
        try:
            return await self._run(first)
        finally:
            self.control.listeners.remove(self._on_control)

    async def _run(self, first: Connection) -> Progress:
        self.log.start()
        if self.control.requested:
            self._on_control(self.control.requested)
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
            if self.progress.stop is not None and self.progress.stop.reason is StopReason.ABORTED:
                for task in self.workers:
                    task.cancel()
            else:
                for _ in self.workers:
                    self.queue.put_nowait(_STOP) if not self.queue.full() else None
            await asyncio.gather(*self.workers, producer, return_exceptions=True)
            ticker.cancel()
            waiting = self.writer.settle_retries(stopped=self.progress.stop is not None)
            try:
                self.writer.flush()
            except Exception as error:
                if not self.writer.unrecorded:  # recorded, on the last of the space: a stop
                    self._error(error)
                else:
                    lost = f"{len(self.writer.unrecorded)} results unrecorded, sent again on resume"
                    earlier = self.progress.stop
                    reason = earlier.reason if earlier else StopReason.ERROR
                    detail = f"{earlier.detail}; " if earlier and earlier.detail else ""
                    self.progress.stop = Stop(reason, f"{detail}{error}; {lost}")
                    self.stopping = True
            try:
                self.log.finish(self.progress.stop, waiting)
            finally:
                self.on_progress(self.progress)
        return self.progress

    async def _produce(self) -> None:
        try:
            after, remaining = 0, self.options.limit or -1
            while not self.stopping and remaining:
                page = self.log.pending(after, 500 if remaining < 0 else min(500, remaining))
                if not page:
                    wait = self.log.more()
                    if wait is None:
                        break
                    await asyncio.sleep(wait)  # another process's claims may yet come free
                    continue
                for delivery in page:
                    after = delivery.reader.id
                    if self.stopping:
                        break
                    if not delivery.eligible:
                        self.writer.add(retry.left(delivery))
                    else:
                        self.outstanding += 1
                        await self._enqueue(delivery)
                    remaining -= 1
                    if not remaining:
                        break
        except Exception as error:  # a store that cannot be read: stop, keep what is recorded
            self._error(error)
        finally:
            self.producing = False
            self._maybe_idle()

    async def _enqueue(self, delivery: Delivery) -> None:
        """Build the reader's message (its signature may still be on the way) and queue it."""
        try:
            message, message_id = self.build(delivery.reader)
        except WorkerError:
            raise  # not this reader's fault: the campaign stops, the reader stays queued
        except MailerError as error:
            self._unrendered(delivery, error)
            return
        await self.queue.put((delivery, message, message_id))

    def _unrendered(self, delivery: Delivery, error: MailerError) -> None:
        """A message that cannot be made fails its reader; a worker stops, leaving it queued."""
        why = f"not rendered: {error}"
        if self.options.stop_on_render:  # its host's setup is not the one the send checked
            return self._halt(StopReason.ERROR, f"reader {delivery.reader.id}: {why}")
        self._finish(delivery, Reply(554, why), counted_failure=False)

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
                delivery, pending, message_id = item
                try:
                    message = await pending
                except WorkerError:
                    raise
                except MailerError as error:  # built in a worker process: this reader only
                    self._unrendered(delivery, error)
                    continue
                if connection is None or sent_here >= self.options.max_per_connection:
                    if connection is not None:
                        await connection.close()
                    connection, sent_here = None, 0
                    connection = await self._reconnect(delivery)
                    if connection is None:
                        continue
                outcome = await self._deliver(connection, delivery, message, message_id)
                sent_here += 1
                if outcome is None:  # the connection dropped: retry once on a new one
                    await connection.close()
                    connection = await self._reconnect(delivery)
                    if connection is None:
                        continue
                    outcome = await self._deliver(connection, delivery, message, message_id)
                    if outcome is None:
                        self._finish(delivery, Reply(421, "lost twice", retry.CONNECT))
                if not outcome:  # gone: the next message gets a new connection
                    await connection.close()
                    connection = None
        except Exception as error:
            # A failure no reply explains (a full outbox disk, a bug): stop the campaign with the
            # reason; the message in hand stays queued and what was recorded is kept.
            self._error(error)
        finally:
            if connection is not None:
                await connection.close()

    async def _reconnect(self, delivery: Delivery) -> Connection | None:
        try:
            return await self.transport.connect()
        except TransportError as error:
            self._finish(delivery, retry.not_connected(error.reason))
            return None

    async def _deliver(
        self, connection: Connection, delivery: Delivery, message: Message, message_id: str
    ) -> bool | None:
        """Send one message; None means the connection dropped before an answer (the message
        never went whole: it is sent again), False that its answer was lost once it had
        (it may have arrived: deferred, not sent again in this run)."""
        if share := self.log.rate():  # a shared rate: this process's part of it, as it is now
            self.limiter.interval = 1.0 / share
        await self.limiter.acquire()
        if self.log.left(delivery.reader.id):  # since its page was read: not sent after all
            self.writer.add(retry.left(delivery))
            self.outstanding -= 1
            self._maybe_idle()
            return True
        reader = delivery.reader
        try:
            sender = self.options.sender_for(reader) if self.options.sender_for else None
            reply = await connection.send(sender or self.options.sender, reader.email, message,
                                          reader.smtputf8)  # fmt: skip
        except ConnectionLost as error:
            if error.whole:  # its reply was lost: it may have arrived
                self._finish(delivery, retry.unanswered(error.reason))
                return False
            self._connection_failure(Reply(421, "connection lost", retry.CONNECT))
            return None
        self._finish(delivery, reply, message_id)
        return True

    def _connection_failure(self, reply: Reply) -> None:
        if (stop := self.failures.failure(reply)) is not None:
            self._halt(stop.reason, stop.detail)

    def _finish(
        self, delivery: Delivery, reply: Reply, message_id: str = "", counted_failure: bool = True
    ) -> None:
        attempts = delivery.attempts + 1
        verdict = retry.judge(reply)
        if verdict.status == "sent":
            self.failures.success()
        elif counted_failure:
            self._connection_failure(reply)
        sent = verdict.status == "sent"
        result = Result(delivery.reader.id, verdict.status, attempts, reply.code,
                        reply.text[:500], message_id if sent else "", verdict.bounced)  # fmt: skip
        again = retry.may_retry(verdict.status, attempts, self.options.max_attempts)
        again = again and reply.stage != retry.UNANSWERED  # cut short by a stop: queued again
        self.writer.add(result, final=not again)
        if again and not self.stopping:
            delay = retry.backoff(self.options.retry_delay, attempts)
            later = Delivery(delivery.reader, attempts)
            task = asyncio.create_task(self._retry_later(later, delay))
            self.retries.add(task)
            task.add_done_callback(self.retries.discard)
        else:
            self.outstanding -= 1
            self._maybe_idle()

    async def _retry_later(self, delivery: Delivery, delay: float) -> None:
        self.progress.waiting_retry += 1
        try:
            await asyncio.sleep(delay)
        finally:
            self.progress.waiting_retry -= 1
        try:
            await self._enqueue(delivery)
        except Exception as error:  # a worker or the store failed: stop, keep what is recorded
            self._error(error)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(0.05)
            try:
                self.writer.flush()
                self.log.rate()  # a worker keeps its claims while a reply is waited for
            except Exception as error:
                self._error(error)
            self.on_progress(self.progress)


_STOP: Any = (Delivery(Reader(0, "")), Ready([]), "")
