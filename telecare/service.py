"""`telecare run`: ingest, alert engine and API composed in one process, each role optional."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection, Coroutine
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Any, Self

import psycopg
import uvicorn
from fastapi import FastAPI

from telecare.alerts.certificate_expiry import watch_certificate_expiry
from telecare.alerts.engine import AlertEngine
from telecare.alerts.feed import feed_from_mqtt
from telecare.api.app import create_app, create_operations_app
from telecare.api.context import ApiContext
from telecare.api.event_hub import EventHub
from telecare.api.recent import Recent
from telecare.api.token_cache import TokenCache
from telecare.core.metrics import Metrics
from telecare.core.settings import ROLES, Settings
from telecare.db.migrations.runner import upgrade
from telecare.db.pool import Pool, open_pool
from telecare.db.retention import RetentionPolicy, prune_daily
from telecare.devices.broker_files import BrokerFilesPublisher
from telecare.devices.certificates import DeviceCertificates
from telecare.devices.credentials import BrokerCredentials, NoBrokerCredentials
from telecare.devices.dynsec import DynsecCredentials
from telecare.ingest.consumer import Ingest
from telecare.protocol.canary import Canary

log = logging.getLogger(__name__)

_GRACEFUL_SHUTDOWN_S = 10


async def _count_fleet(fleet_stats: Recent[Any]) -> None:
    """The fleet figures counted once at start (a while for a national fleet)."""
    try:
        await fleet_stats.get()
    except psycopg.Error as exc:  # the first caller counts them then
        log.warning("fleet figures not counted at start error=%s", exc)


class Service:
    """Async context manager: everything starts on enter and is stopped, in order, on exit."""

    def __init__(self, settings: Settings, roles: Collection[str] = ROLES) -> None:
        unknown = set(roles) - ROLES
        if unknown or not roles:
            raise ValueError(f"roles must be among {sorted(ROLES)}, got {sorted(roles)}")
        self.settings = settings
        self.roles = frozenset(roles)
        self.metrics = Metrics()
        self.ingest: Ingest | None = None
        self.canary: Canary | None = None
        self.engine: AlertEngine | None = None
        self.dynsec: DynsecCredentials | None = None
        self.broker_files: BrokerFilesPublisher | None = None
        self.events: EventHub | None = None
        self.tokens = TokenCache()  # runs (and so remembers tokens) in the API role only
        self._server: uvicorn.Server | None = None
        self._feed_connected = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stack = AsyncExitStack()
        self._pool: Pool | None = None

    @property
    def pool(self) -> Pool:
        assert self._pool is not None, "service not started"
        return self._pool

    @property
    def api_port(self) -> int:
        assert self._server is not None and self._server.servers, "api not started"
        port: int = self._server.servers[0].sockets[0].getsockname()[1]
        return port

    @property
    def api_url(self) -> str:
        return f"http://{self.settings.api_host}:{self.api_port}"

    async def __aenter__(self) -> Self:
        await self._stack.__aenter__()
        try:
            await self._start()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stack.__aexit__(exc_type, exc, tb)

    async def _start(self) -> None:
        self._pool = await self._stack.enter_async_context(open_pool(self.settings))
        async with self._pool.connection() as conn:
            result = await upgrade(conn)
        if not result.timescaledb:
            log.warning("running on plain PostgreSQL: TimescaleDB is not available")
        tg = await self._stack.enter_async_context(asyncio.TaskGroup())
        self._stack.push_async_callback(self._stop_tasks)  # runs before the group is awaited

        if self.roles & {"alerts", "ingest"}:
            self.canary = self._canary(tg)
        if "alerts" in self.roles:
            self.engine = AlertEngine(self.settings, self._pool, self.metrics, canary=self.canary)
            self._spawn(tg, self.engine.run(), "alerts")
            if self.settings.broker_credentials == "certificates":
                expiry = watch_certificate_expiry(
                    self._pool, warning_days=self.settings.certificate_expiry_warning_days
                )
                self._spawn(tg, expiry, "alerts.certificate_expiry")
        if "ingest" in self.roles:
            self.ingest = Ingest(self.settings, self._pool, self.metrics, canary=self.canary)
            if self.engine is not None:
                self.ingest.add_observer(self.engine)
            self._spawn(tg, self.ingest.run(), "ingest")
            policy = RetentionPolicy.from_settings(self.settings)
            every_s = self.settings.retention_interval_s
            self._spawn(
                tg, prune_daily(self._pool, policy, self.metrics, every_s=every_s), "retention"
            )
        elif self.engine is not None:
            feed = feed_from_mqtt(
                self.settings,
                self.engine,
                self._feed_connected,
                canary=self.canary,
                reconnected=self.engine.feed_reconnected,
            )
            self._spawn(tg, feed, "alerts.feed")
        if "api" in self.roles:
            await self._start_api(tg)
        else:  # every process answers /healthz and /metrics, whatever its roles
            await self._serve(tg, create_operations_app(self._context(NoBrokerCredentials())))

    def _canary(self, tg: asyncio.TaskGroup) -> Canary:
        """The proof that telemetry flows end to end (protocol/canary.py), for the engine's
        judgement and /healthz."""
        canary = Canary(interval_s=self.settings.canary_interval_s)
        metrics = self.metrics
        canary.on_heard(metrics.feed_canaries.inc)
        metrics.feed_heard_age_seconds.set_function(
            lambda: min(time.monotonic() - canary.heard_until, 1e9)
        )
        self._spawn(tg, canary.run(), "feed.canary")
        return canary

    def _spawn(self, tg: asyncio.TaskGroup, coro: object, name: str) -> None:
        self._tasks.append(tg.create_task(coro, name=name))  # type: ignore[arg-type]

    def _broker_credentials(self, tg: asyncio.TaskGroup) -> BrokerCredentials:
        if self.settings.broker_credentials == "certificates":
            # the broker checks certificates against the device CA; nothing to tell it per
            # device (revocations go through the revocation list: devices/broker_files.py)
            return NoBrokerCredentials()
        if self.settings.broker_credentials == "none":
            log.warning(
                "broker credentials are not managed (TELECARE_BROKER_CREDENTIALS=none): run so"
                " only against a development broker; production brokers enforce a password per"
                " device with dynsec (docs/REGISTRY.md)"
            )
            return NoBrokerCredentials()
        self.dynsec = DynsecCredentials(self.settings, self.metrics)
        self._spawn(tg, self.dynsec.run(), "api.broker_credentials")
        return self.dynsec

    def _device_certificates(self, tg: asyncio.TaskGroup) -> DeviceCertificates | None:
        """The device CA and the task that keeps its revocation list in force at the broker."""
        if self.settings.broker_credentials != "certificates":
            return None
        certificates = DeviceCertificates.from_settings(self.settings)
        self.broker_files = publisher = BrokerFilesPublisher(
            self.settings, self.pool, self.metrics, certificates.ca
        )
        certificates.changed = publisher.poke
        self._spawn(tg, publisher.run(), "api.device_crl")
        return certificates

    def _context(
        self, credentials: BrokerCredentials, certificates: DeviceCertificates | None = None
    ) -> ApiContext:
        readiness = {}
        if self.ingest is not None:
            readiness["broker"] = self.ingest.is_connected
        elif self.engine is not None:
            readiness["broker"] = self._feed_connected.is_set
        if self.canary is not None:
            # Telemetry proven to flow from the broker through this process, lately.
            readiness["telemetry_feed"] = self.canary.is_live
        if self.engine is not None:
            readiness["alert_engine"] = self.engine.loaded.is_set
            writer = self.engine.writer
            readiness["alert_writer"] = lambda: writer.healthy
        if self.dynsec is not None:
            readiness["broker_credentials"] = self.dynsec.ready
        if self.broker_files is not None:
            readiness["device_crl"] = self.broker_files.healthy
        events = self.events or EventHub(self.settings.database_url, self.pool, self.metrics)
        if self.events is not None:
            readiness["event_stream"] = events.listening.is_set
        return ApiContext(
            self.settings,
            self.pool,
            self.metrics,
            readiness,
            events,
            credentials,
            certificates,
            self.tokens,
        )

    async def _start_api(self, tg: asyncio.TaskGroup) -> None:
        credentials = self._broker_credentials(tg)
        certificates = self._device_certificates(tg)
        self.events = events = EventHub(self.settings.database_url, self.pool, self.metrics)
        self._spawn(tg, events.run(), "api.events")
        self._spawn(tg, self.tokens.run(self.settings.database_url), "api.token_cache")
        app = create_app(self._context(credentials, certificates))
        self._spawn(tg, _count_fleet(app.state.fleet_stats), "api.fleet_stats")
        await self._serve(tg, app)

    async def _serve(self, tg: asyncio.TaskGroup, app: FastAPI) -> None:
        config = uvicorn.Config(
            app,
            host=self.settings.api_host,
            port=self.settings.api_port,
            log_config=None,
            lifespan="off",
            access_log=False,
            proxy_headers=True,
            forwarded_allow_ips=self.settings.forwarded_allow_ips,
            # Streams end when the event hub closes; this only bounds a client that hangs.
            timeout_graceful_shutdown=_GRACEFUL_SHUTDOWN_S,
        )
        self._server = uvicorn.Server(config)
        task = tg.create_task(self._server.serve(), name="api")
        while not self._server.started:
            if task.done():
                task.result()
                raise RuntimeError("the API server stopped while starting")
            await asyncio.sleep(0.01)
        self._stack.push_async_callback(self._stop_api, task)
        log.info("http listening url=%s app=%s", self.api_url, app.title)

    async def _stop_api(self, task: asyncio.Task[None]) -> None:
        assert self._server is not None
        if self.events is not None:
            self.events.close()  # open event streams end, so the server's wait for them is short
        self._server.should_exit = True
        await task

    async def _stop_tasks(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def wait_ready(self, within_s: float = 30) -> None:
        """Until the broker connection is up, the engine has loaded its deadlines and the event
        stream is listening."""
        waits: list[Coroutine[Any, Any, object]] = []
        if self.ingest is not None:
            waits.append(self.ingest.wait_connected())
        elif self.engine is not None:
            waits.append(self._feed_connected.wait())
        if self.engine is not None:
            waits.append(self.engine.loaded.wait())
        if self.dynsec is not None:
            waits.append(self.dynsec.connected.wait())
        if self.events is not None:
            waits.append(self.events.listening.wait())
        async with asyncio.timeout(within_s):
            await asyncio.gather(*waits)
