"""The engine's actions queued and written in order, by a writer that cannot stall silently.

The rules decide synchronously (`put`, from a heartbeat or the clock) and must never wait for
the database, so there is no back-pressure to give them: the queue is bounded instead, large
enough for a mass outage of the fleet a process owns (about one action per device), and an
action that finds it full is refused at once, counted (`telecare_alert_actions_refused_total`
with reason `queue_full`), logged, marks the writer unhealthy and raises `alert_writer_stalled`.
The newest action is the one refused, so what is written stays a prefix of what was decided,
in order: a resolve is never written without the raise before it.

Batches are written in order by `alerts.writer.write_actions`. A failure a retry can cure
(`core.retry.is_transient`: the connection, the server's state, a deadline) is retried with
capped exponential back-off and jitter, the batch kept whole. Any other failure (the database
refused the data, or a bug) splits the batch in halves, written in order, down to the single
actions that fail alone: each is put aside (the last of them kept in memory), counted with
reason `database`, logged with the action, and the writer goes on with the next ones. Each
attempt has a deadline (a hung database fails it); a batch that keeps missing it is split the
same way, so a batch too big for the deadline cannot be retried whole forever.

Stalled: nothing written for `stall_s` while actions wait, or while the last thing the writer
did was to refuse (a refusal of everything, e.g. a broken schema, is a stall too, not a stream
of refused actions). `healthy` turns False then, for /healthz and `telecare_alert_writer_stalled`.
An alert about the writer cannot be written while it is stalled, so `alert_writer_stalled` is
raised by the writer itself, ahead of the queue, as soon as it writes again after a stall, and
after any action refused (by the database or for a full queue); its details say how many were
refused and why. One per writer stays open (the subject names the process); a later incident
updates its details.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

import psycopg

from telecare.alerts.decisions import Action, Raise, Update
from telecare.alerts.types import AlertType
from telecare.alerts.writer import Changed, write_actions
from telecare.core.metrics import Metrics
from telecare.core.retry import is_permanent, until_written
from telecare.core.settings import Settings
from telecare.db.pool import Pool

log = logging.getLogger(__name__)

# Actions held at most: about one per device for a mass outage of a large fleet's share.
MAX_PENDING = 1_000_000
BATCH_MAX = 1000  # actions per transaction
REFUSED_KEPT = 1000  # refused actions kept for inspection, the newest
_SPLIT_AFTER_MISSED_DEADLINES = 3
_OVERFLOW_LOG_EVERY_S = 10.0
_TEXT_MAX = 500  # characters of an action or an error kept in logs and the alert's details


@dataclass(frozen=True, slots=True)
class Refused:
    """An action the database refused (or that failed with a bug): put aside, not retried."""

    action: Action
    error: str
    at: datetime


def _describe(exc: BaseException) -> str:
    """`ErrorClass: first line of the message (the database's detail)`, for logs and the
    alert's details."""
    message = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {message[0]}" if message else type(exc).__name__
    detail = exc.diag.message_detail if isinstance(exc, psycopg.Error) else None
    if detail:
        text += f" ({detail})"
    return text[:_TEXT_MAX]


def _show(action: Action) -> str:
    # repr escapes control characters (a NUL in details is often why an action was refused).
    return repr(action)[:_TEXT_MAX]


class AlertWriter:
    """`put` actions from synchronous code; `run()` (or `async with`) writes them.

    `name` names this writer's process in logs and in the subject of its alert
    (`alert_writer_stalled:{name}`); `on_written` is called with what each write changed.
    """

    def __init__(
        self,
        pool: Pool,
        metrics: Metrics,
        *,
        stall_s: float,
        name: str,
        attempt_timeout_s: float | None = None,
        max_pending: int = MAX_PENDING,
        batch_max: int = BATCH_MAX,
        on_written: Callable[[list[Changed]], None] | None = None,
    ) -> None:
        self._pool = pool
        self._metrics = metrics
        self.stall_s = stall_s
        self.name = name
        self.subject = f"{AlertType.ALERT_WRITER_STALLED.value}:{name}"
        self._attempt_timeout_s = attempt_timeout_s
        self._max_pending = max_pending
        self._batch_max = batch_max
        self._on_written = on_written
        self._queue: deque[tuple[float, Action]] = deque()
        self._in_flight = 0
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        # Stall accounting (monotonic seconds): the last time the writer was known good (it
        # wrote, or work arrived at a writer whose last outcome was good), and whether its last
        # outcome was a refusal.
        self._good_at = time.monotonic()
        self._refusing = False
        self._last_error: str | None = None
        self._dropped_at: float | None = None
        self._dropped_logged_at = -_OVERFLOW_LOG_EVERY_S
        # What the writer's own alert reports; `_alert_due` when it has something new to say.
        self._alert_due = False
        self._incident: dict[str, Any] = {}
        self.refused = 0
        self.dropped = 0
        self._refused: deque[Refused] = deque(maxlen=REFUSED_KEPT)
        metrics.alert_writer_stalled.set_function(lambda: 0.0 if self.healthy else 1.0)
        metrics.alert_actions_pending.set_function(lambda: float(self.pending))

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        pool: Pool,
        metrics: Metrics,
        *,
        name: str,
        on_written: Callable[[list[Changed]], None] | None = None,
    ) -> Self:
        """Stalled after TELECARE_ALERT_WRITER_STALL_S; each attempt bounded by
        TELECARE_DB_WRITE_TIMEOUT_S, so a hung database fails it and it is retried."""
        return cls(
            pool,
            metrics,
            stall_s=settings.alert_writer_stall_s,
            name=name,
            attempt_timeout_s=settings.db_write_timeout_s,
            on_written=on_written,
        )

    # --- what the engine and /healthz see ---

    def put(self, action: Action) -> bool:
        """Queue `action` (never blocks). False when the queue is full: the action is refused,
        counted, logged, and reported by the writer's alert."""
        if len(self._queue) >= self._max_pending:
            self._overflow(action)
            return False
        if not self._busy() and not self._refusing:
            self._good_at = time.monotonic()  # idle time is not a stall
        self._queue.append((time.perf_counter(), action))
        self._idle.clear()
        self._wake.set()
        return True

    @property
    def pending(self) -> int:
        """Actions queued or being written."""
        return len(self._queue) + self._in_flight

    @property
    def stalled_for_s(self) -> float:
        """Seconds since the writer last wrote, while actions wait or its last outcome was a
        refusal; 0 while it is idle and well."""
        if not self._busy() and not self._refusing:
            return 0.0
        return time.monotonic() - self._good_at

    @property
    def healthy(self) -> bool:
        """False while stalled for `stall_s` or more, and for `stall_s` after an action was
        refused for a full queue."""
        if self.stalled_for_s >= self.stall_s:
            return False
        return self._dropped_at is None or time.monotonic() - self._dropped_at >= self.stall_s

    @property
    def refused_actions(self) -> list[Refused]:
        """The actions put aside, oldest first (the last REFUSED_KEPT)."""
        return list(self._refused)

    async def drained(self) -> None:
        """Until nothing waits to be written (the writer's own alert included)."""
        await self._idle.wait()

    # --- running ---

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self.run(), name=f"alerts.writer[{self.name}]")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stops writing: what is still queued is left (a restarted engine decides it again
        from the database)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def run(self) -> None:
        """Write until cancelled."""
        while True:
            if not self._queue and not self._alert_due:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = self._own_alert()
            while self._queue and len(batch) < self._batch_max:
                batch.append(self._queue.popleft())
            self._in_flight = len(batch)
            try:
                await self._write(batch)
            finally:
                self._in_flight = 0

    def _busy(self) -> bool:
        return bool(self._queue) or self._in_flight > 0 or self._alert_due

    # --- writing ---

    async def _write(self, batch: Sequence[tuple[float, Action]]) -> None:
        """Write `batch` in order; on a permanent failure, or after missing the attempt's
        deadline a few times (a batch too big for it would otherwise miss it forever), its
        halves in order."""
        missed = 0

        def give_up(exc: Exception) -> bool:
            nonlocal missed
            if isinstance(exc, TimeoutError) and len(batch) > 1:
                missed += 1
                return missed >= _SPLIT_AFTER_MISSED_DEADLINES
            return is_permanent(exc)

        try:
            changed = await until_written(
                lambda: self._attempt([action for _, action in batch]),
                what="alerts",
                context=f"actions={len(batch)}",
                metrics=self._metrics,
                give_up_if=give_up,
            )
        except Exception as exc:  # refused by the database, a bug, or too slow as a whole
            if len(batch) == 1:
                self._put_aside(batch[0][1], exc)
                self._in_flight -= 1
                return
            half = len(batch) // 2
            await self._write(batch[:half])
            await self._write(batch[half:])
            return
        self._written(batch, changed)

    async def _attempt(self, actions: list[Action]) -> list[Changed]:
        """One attempt, its deadline here so that its failure is known to the stall report."""
        try:
            async with asyncio.timeout(self._attempt_timeout_s):
                return await write_actions(self._pool, actions)
        except TimeoutError:
            self._last_error = "no answer within the attempt's deadline"
            raise
        except Exception as exc:
            self._last_error = _describe(exc)
            raise

    def _written(self, batch: Sequence[tuple[float, Action]], changed: list[Changed]) -> None:
        now = time.monotonic()
        stalled_s = now - self._good_at
        if stalled_s >= self.stall_s:
            log.warning(
                "alert writer writes again writer=%s stalled_s=%.1f pending=%d last_error=%s",
                self.name,
                stalled_s,
                self.pending,
                self._last_error,
            )
            self._report(
                "stalled",
                stalled_s=round(stalled_s, 1),
                stall_error=self._last_error or "none: the writes were slow",
            )
        self._good_at = now
        self._last_error = None
        self._refusing = False
        self._in_flight -= len(batch)
        written = time.perf_counter()
        for emitted, _ in batch:
            self._metrics.alert_write_seconds.observe(written - emitted)
        if self._on_written is not None:
            try:
                self._on_written(changed)
            except Exception:  # counting what was written must not stop the writing
                log.exception("alert writer callback failed writer=%s", self.name)

    def _put_aside(self, action: Action, exc: Exception) -> None:
        error = _describe(exc)
        self.refused += 1
        self._refusing = True
        self._refused.append(Refused(action, error, datetime.now(UTC)))
        self._metrics.alert_actions_refused.labels("database").inc()
        log.error(
            "alert action refused, put aside writer=%s action=%s error=%s",
            self.name,
            _show(action),
            error,
            # a bug's traceback says where; the database's refusal says it all in its message
            exc_info=None if isinstance(exc, psycopg.Error) else exc,
        )
        if getattr(action, "subject", None) == self.subject:
            return  # the writer's own alert: reporting it again would refuse it again
        self._report("refused", refused_error=error, refused_action=_show(action))

    def _overflow(self, action: Action) -> None:
        now = time.monotonic()
        self.dropped += 1
        self._dropped_at = now
        self._metrics.alert_actions_refused.labels("queue_full").inc()
        if now - self._dropped_logged_at >= _OVERFLOW_LOG_EVERY_S:
            self._dropped_logged_at = now
            log.error(
                "alert writer queue full, action refused writer=%s pending=%d refused_so_far=%d"
                " action=%s",
                self.name,
                self.pending,
                self.dropped,
                _show(action),
            )
        self._report("queue_full")

    # --- the writer's own alert ---

    def _report(self, incident: str, **facts: Any) -> None:
        self._incident.update(facts, last_incident=incident)
        if not self._alert_due:
            self._alert_due = True
            self._idle.clear()
            self._wake.set()

    def _own_alert(self) -> list[tuple[float, Action]]:
        """The raise (or, when it is open already, the update) of the writer's alert, ahead of
        the queue, when there is something new to report."""
        if not self._alert_due:
            return []
        self._alert_due = False
        details: dict[str, Any] = {
            "engine": self.name,
            "refused": self.refused,
            "dropped": self.dropped,
            **self._incident,
        }
        emitted = time.perf_counter()
        return [
            (
                emitted,
                Raise(
                    self.subject,
                    AlertType.ALERT_WRITER_STALLED,
                    datetime.now(UTC),
                    details=details,
                ),
            ),
            (emitted, Update(self.subject, details)),
        ]
