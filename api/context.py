"""What the API needs from the running service."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from telecare.api.event_hub import EventHub
from telecare.api.token_cache import TokenCache
from telecare.core.metrics import Metrics
from telecare.core.settings import Settings
from telecare.db.pool import Pool
from telecare.devices.certificates import DeviceCertificates
from telecare.devices.credentials import BrokerCredentials, NoBrokerCredentials


@dataclass(frozen=True)
class ApiContext:
    settings: Settings
    pool: Pool
    metrics: Metrics
    # Checks /healthz runs besides the database: e.g. "is the ingest connected to the broker".
    readiness: dict[str, Callable[[], bool]]
    # What GET /events streams from: one LISTEN for all of this process's streams.
    events: EventHub
    # Where device passwords are enforced (TELECARE_BROKER_CREDENTIALS).
    credentials: BrokerCredentials = field(default_factory=NoBrokerCredentials)
    # The device CA, when devices prove who they are by certificate (None otherwise).
    certificates: DeviceCertificates | None = None
    # Tokens that authenticated a moment ago (keeps nothing until its `run()` listens).
    tokens: TokenCache = field(default_factory=TokenCache)
