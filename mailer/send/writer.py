"""The pipeline's one writer: each result counted into the progress, and recorded in batches."""

from __future__ import annotations

from mailer.errors import DiskFullError
from mailer.send.types import DeliveryLog, Progress, Result


class ResultWriter:
    """Holds results until ``batch`` of them can be committed in one transaction; a failed
    commit keeps the batch for the next one. What it holds when the process dies is what
    may be delivered twice on resume, hence the campaign's in-flight limit."""

    def __init__(self, log: DeliveryLog, progress: Progress, batch: int) -> None:
        self.log, self.progress, self.batch = log, progress, batch
        self.unrecorded: list[Result] = []
        self.retrying: set[int] = set()  # deferred in this run, with a retry still to come

    def add(self, result: Result, final: bool = True) -> None:
        """Count one result; ``final`` is False for a deferral that will be retried."""
        counts = self.progress.counts
        if result.subscriber_id in self.retrying:  # this attempt supersedes its deferral
            self.retrying.discard(result.subscriber_id)
            counts["deferred"] -= 1
        if result.status == "deferred" and not final:
            self.retrying.add(result.subscriber_id)
        counts[result.status] += 1
        if result.status == "deferred" and final:
            self.progress.final_deferred += 1
        self.unrecorded.append(result)
        if len(self.unrecorded) >= self.batch:
            self.flush()

    def flush(self) -> None:
        """Commit what is held; raise DiskFullError once the log had to draw on its reserve
        of space: recorded, but the run must stop."""
        if self.unrecorded:
            full = self.log.record(self.unrecorded)  # one transaction: on failure it is kept
            self.unrecorded = []
            if full:
                raise DiskFullError(self.log.where)

    def settle_retries(self, stopped: bool = False) -> list[int]:
        """Retries that never ran: at the run's end they stay deferred, as the database says,
        and count as done; cut short by a stop, they are returned, for the log to queue again
        (a resume, or the next start of `mailer serve`, sends them) and counted no more."""
        waiting = sorted(self.retrying)
        if stopped:
            self.progress.counts["deferred"] -= len(waiting)
        else:
            self.progress.final_deferred += len(waiting)
        self.retrying.clear()
        return waiting if stopped else []
