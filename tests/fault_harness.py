"""One fault run: a `telecare run` process on its own database and broker, a fleet under load,
and the counts that say whether anything was lost or stored twice.

Each fault test builds a `FaultRun`, starts the load, breaks something, mends it, and calls
`finish()`: the load stops raising alarms, the hubs keep re-sending until every alarm is
acknowledged, and the database is asked what it holds. The result (load held, recovery times,
sent / stored / lost / duplicated) is printed and written as JSON to `RESULTS_DIR`, from which
`make reliability` builds the table in RELIABILITY.md.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg

from telecare.api.tokens import Role, create_token
from telecare.core.settings import Settings
from telecare.db.pool import open_pool
from tests.brokers import PrivateBroker
from tests.fault_load import AlarmFleet, HeartbeatLoad
from tests.service_process import ServiceProcess
from tests.support import wait_for

RESULTS_DIR = Path(os.environ.get("TELECARE_RELIABILITY_DIR", "build/reliability"))
FULL = os.environ.get("TELECARE_FAULT_SCALE") == "full"


@dataclass(frozen=True)
class Scale:
    """How hard a fault run pushes: `make test` runs CI, `make reliability` runs FULL."""

    name: str
    heartbeat_rate: float
    heartbeat_devices: int
    alarm_rate: float
    hubs: int
    steady_s: float  # load before the fault and after recovery

    def describe(self, alarm_rate: float) -> str:
        return (
            f"{self.heartbeat_rate:g} heartbeats/s (QoS 1, {self.heartbeat_devices} devices)"
            f" + {alarm_rate:g} alarms/s ({self.hubs} hubs)"
        )


SCALE = (
    Scale("full", heartbeat_rate=2000, heartbeat_devices=1000, alarm_rate=20, hubs=200, steady_s=10)
    if FULL
    else Scale("ci", heartbeat_rate=300, heartbeat_devices=100, alarm_rate=5, hubs=25, steady_s=3)
)


@dataclass
class Counts:
    sent: int = 0
    stored: int = 0
    lost: int = 0
    duplicated: int = 0


@dataclass
class FaultResult:
    fault: str
    scale: str
    load: str
    recovery_first_write_s: float | None = None
    recovery_caught_up_s: float | None = None
    alarms: Counts = field(default_factory=Counts)
    heartbeats: Counts = field(default_factory=Counts)
    heartbeats_dropped_counted: int = 0
    notes: dict[str, Any] = field(default_factory=dict)
    at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def save(self) -> None:
        folder = RESULTS_DIR / self.scale
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{self.fault}.json").write_text(json.dumps(asdict(self), indent=2) + "\n")
        print(f"\nRELIABILITY {json.dumps(asdict(self))}")


class FaultRun:
    def __init__(
        self,
        fault: str,
        tmp_path: Path,
        *,
        database_url: str,
        broker: PrivateBroker,
        env: dict[str, str] | None = None,
        scale: Scale = SCALE,
        alarm_rate: float | None = None,
    ) -> None:
        self.scale = scale
        self.database_url = database_url
        self.broker = broker
        tag = uuid.uuid4().hex[:6]
        self.hub_ids = [f"fh-{tag}-{n:04d}" for n in range(scale.hubs)]
        self.beat_ids = [f"fb-{tag}-{n:05d}" for n in range(scale.heartbeat_devices)]
        self.service = ServiceProcess(
            {
                "TELECARE_DATABASE_URL": database_url,
                "TELECARE_MQTT_URL": broker.url,
                "TELECARE_MQTT_CLIENT_ID": f"fault-ingest-{tag}",
                "TELECARE_LOG_LEVEL": "WARNING",
                **(env or {}),
            },
            tmp_path / f"{fault}-service.log",
        )
        alarm_rate = alarm_rate or scale.alarm_rate
        self.result = FaultResult(fault, scale.name, scale.describe(alarm_rate))
        self.heartbeats = HeartbeatLoad(broker.address, self.beat_ids, scale.heartbeat_rate)
        self.alarms = AlarmFleet(broker.address, self.hub_ids, alarm_rate)
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Service up, devices registered, load running and already stored (warm)."""
        await self.service.start()
        await self._register(self.hub_ids + self.beat_ids)
        self._tasks = [
            asyncio.create_task(self.heartbeats.run(), name="test.heartbeat_load"),
            asyncio.create_task(self.alarms.run(), name="test.alarm_fleet"),
        ]
        await wait_for(self._stored_some, within_s=30, what="the load reaching the database")
        await asyncio.sleep(self.scale.steady_s)

    async def _register(self, device_ids: list[str]) -> None:
        async with open_pool(Settings(database_url=self.database_url, db_pool_min=1)) as pool:
            token = await create_token(pool, role=Role.ADMIN, name="fault-test")
        csv = "device_id,heartbeat_interval_s\n" + "".join(f"{d},60\n" for d in device_ids)
        async with httpx.AsyncClient(base_url=f"{self.service.url}/api/v1", timeout=60) as api:
            answer = await api.post(
                "/devices/import",
                content=csv.encode(),
                headers={"Authorization": f"Bearer {token}", "Content-Type": "text/csv"},
            )
        assert answer.status_code == 200 and answer.json()["ok"] == len(device_ids), answer.text

    async def _stored_some(self) -> bool:
        return await self.stored_writes() > 0

    async def stored_writes(self) -> int:
        """Heartbeats and alarms of this run in the database (-1 while it cannot be asked)."""
        try:
            async with await psycopg.AsyncConnection.connect(
                self.database_url, connect_timeout=2
            ) as conn:
                cur = await conn.execute(
                    "SELECT (SELECT count(*) FROM heartbeats WHERE device_id = ANY(%(b)s))"
                    " + (SELECT count(*) FROM alarms WHERE device_id = ANY(%(h)s))",
                    {"b": self.beat_ids, "h": self.hub_ids},
                )
                row = await cur.fetchone()
        except psycopg.OperationalError:
            return -1
        assert row is not None
        return int(row[0])

    async def recovery(self, fault_end: float, baseline: int, *, since: float = 0) -> None:
        """From the fault's end: the first write committed after it (the run's rows in the
        database exceed `baseline`, their number when the fault ended or, for a database
        fault, when it began), and the backlog caught up: every alarm raised before the end
        stored and acknowledged, every heartbeat the broker took before it (and after `since`:
        what a killed process held is gone) stored or counted as dropped by the service."""

        async def written() -> float | None:
            return time.time() if await self.stored_writes() > baseline else None

        first_write = await wait_for(written, within_s=120, what="a write after the fault")
        self.result.recovery_first_write_s = round(first_write - fault_end, 2)
        raised = [key for key, t in self.alarms.sent().items() if t <= fault_end]
        beats = {seq for at, seq in self.heartbeats.sent if since < at <= fault_end}
        low, high = (min(beats), max(beats)) if beats else (0, 0)

        last: dict[str, int] = {}

        async def caught_up() -> float | None:
            acked = self.alarms.acks()
            last["alarms not acknowledged"] = sum(key not in acked for key in raised)
            if last["alarms not acknowledged"]:
                return None
            stored = len(beats & await self._heartbeats_stored(low, high))
            dropped = await self.dropped_heartbeats()
            last.update({"heartbeats": len(beats), "stored": stored, "dropped (counted)": dropped})
            return time.time() if stored + dropped >= len(beats) else None

        try:
            done = await wait_for(caught_up, within_s=180, what="the backlog caught up")
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {last}") from None
        self.result.recovery_caught_up_s = round(done - fault_end, 2)

    async def _heartbeats_stored(self, low: int, high: int) -> set[int]:
        async with await psycopg.AsyncConnection.connect(self.database_url) as conn:
            cur = await conn.execute(
                "SELECT seq FROM heartbeats WHERE device_id = ANY(%s) AND seq BETWEEN %s AND %s",
                [self.beat_ids, low, high],
            )
            return {seq for (seq,) in await cur.fetchall()}

    async def dropped_heartbeats(self) -> int:
        """What the service counted as telemetry it could not keep (buffers, queues)."""
        metrics = await self.service.metrics()
        return int(
            sum(
                value
                for name, value in metrics.items()
                if (
                    name.startswith("telecare_write_dropped_total{") and 'what="heartbeats"' in name
                )
                or name.startswith('telecare_mqtt_dropped_total{session="telemetry"')
            )
        )

    async def finish(self) -> FaultResult:
        """Stop the load; every alarm acknowledged after the hubs' retries; count everything."""
        self.alarms.stop_raising()
        self.heartbeats.stop()
        await wait_for(self._no_pending, within_s=120, what="every alarm acknowledged")
        await asyncio.sleep(1)  # the last heartbeat batches
        self.result.heartbeats_dropped_counted = await self.dropped_heartbeats()
        self.alarms.stop()
        await asyncio.gather(*self._tasks)
        await self._count()
        self.result.save()
        return self.result

    async def _no_pending(self) -> bool:
        return self.alarms.pending() == 0

    async def _count(self) -> None:
        async with await psycopg.AsyncConnection.connect(self.database_url) as conn:
            cur = await conn.execute(
                "SELECT device_id, msg_id FROM alarms WHERE device_id = ANY(%s)", [self.hub_ids]
            )
            alarm_rows = Counter((d, m) for d, m in await cur.fetchall())
            cur = await conn.execute(
                "SELECT seq FROM heartbeats WHERE device_id = ANY(%s)", [self.beat_ids]
            )
            beat_rows = Counter(seq for (seq,) in await cur.fetchall())
        sent_alarms = set(self.alarms.sent())
        self.result.alarms = Counts(
            sent=len(sent_alarms),
            stored=len(alarm_rows),
            lost=len(sent_alarms - set(alarm_rows)),
            duplicated=sum(n - 1 for n in alarm_rows.values()),
        )
        sent_beats = {seq for _, seq in self.heartbeats.sent}
        self.result.heartbeats = Counts(
            sent=len(sent_beats),
            stored=len(beat_rows),
            lost=len(sent_beats - set(beat_rows)),
            duplicated=sum(n - 1 for n in beat_rows.values()),
        )

    async def alarms_stored(self) -> set[tuple[str, str]]:
        async with await psycopg.AsyncConnection.connect(self.database_url) as conn:
            cur = await conn.execute(
                "SELECT device_id, msg_id FROM alarms WHERE device_id = ANY(%s)", [self.hub_ids]
            )
            return {(d, m) for d, m in await cur.fetchall()}

    def accepted_acks(self) -> dict[tuple[str, str], float]:
        return {key: t for key, (t, result) in self.alarms.acks().items() if result == "accepted"}

    async def close(self) -> None:
        self.heartbeats.stop()
        self.alarms.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.to_thread(self.service.stop)
