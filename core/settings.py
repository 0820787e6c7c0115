"""Typed configuration, read from TELECARE_* environment variables (and an optional .env file)."""

from __future__ import annotations

from typing import Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from telecare.core.mqtt_url import BrokerAddress, parse_mqtt_url

ROLES = frozenset({"ingest", "alerts", "api"})


class Settings(BaseSettings):
    """Everything the service needs to know about its surroundings."""

    model_config = SettingsConfigDict(env_prefix="TELECARE_", env_file=".env", extra="ignore")

    database_url: str = "postgresql://postgres@127.0.0.1:5432/telecare"
    mqtt_url: str = "mqtt://127.0.0.1:1883"
    # CA certificate(s) that sign the broker's certificate, for mqtts:// (PEM); unset = the
    # system's trust store. The broker's certificate must also name the URL's host.
    mqtt_ca_file: str | None = None
    # This process's own client certificate and key (PEM), for a broker that identifies clients
    # by certificate (deploy/mosquitto/production.conf): the ingest and the API are separate
    # identities with their own ACLs.
    mqtt_cert_file: str | None = None
    mqtt_key_file: str | None = None
    # The ingest's persistent sessions: `{id}` (telemetry) and `{id}-alarms`.
    mqtt_client_id: str = "telecare-ingest"
    # Alarms the alarm session may hold received but not yet handled (the telemetry session has
    # no receive queue: it handles each message as it is read).
    mqtt_queue_max: int = Field(default=10_000, ge=100)
    # Telemetry connections: 1, or several sharing one subscription for more than about
    # 12,000 messages a second (each is held to the broker's in-flight window; docs/OPERATIONS.md).
    mqtt_telemetry_connections: int = Field(default=1, ge=1, le=64)
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # Proxies whose X-Forwarded-For / X-Forwarded-Proto the API believes (comma-separated
    # addresses, or "*"): the reverse proxy terminating HTTPS (docs/OPERATIONS.md).
    forwarded_allow_ips: str = "127.0.0.1"
    # Failed authentications per client address: `burst` in a row, then this many a minute.
    auth_failures_burst: int = Field(default=10, ge=1)
    auth_failures_per_minute: float = Field(default=10, gt=0)
    log_level: str = "INFO"

    # Per-device broker credentials (docs/REGISTRY.md): `dynsec` = Mosquitto's dynamic-security
    # plugin, managed over its control topic with the account of TELECARE_MQTT_URL; `none` =
    # a development broker without the plugin, where devices connect anonymously;
    # `certificates` = per-device X.509 client certificates issued by the device CA below,
    # enforced by the broker's certificate identity and pattern ACL (no per-device broker state).
    broker_credentials: Literal["none", "dynsec", "certificates"] = "none"
    broker_control_timeout_s: float = Field(default=60, gt=0)

    # The device CA (`telecare ca init`): it signs device certificates at registration; its
    # certificate revocation list is rewritten here on every revocation and at least daily, and
    # the broker is told to reload it by TELECARE_BROKER_RELOAD_COMMAND (a shell command, e.g.
    # `systemctl reload mosquitto`).
    device_ca_cert_file: str | None = None
    device_ca_key_file: str | None = None
    device_crl_file: str | None = None
    broker_reload_command: str | None = None
    # Where devices without a client certificate are let in by password: the Mosquitto password
    # file the backend renders (devices/password_file.py) for the broker's password listener.
    # Unset: every device must have a certificate.
    broker_password_file: str | None = None
    device_certificate_days: int = Field(default=730, ge=1, le=3650)
    # A decommissioned device's certificate stays on the revocation list this long, then leaves
    # it (the broker checks the whole list at every TLS handshake, so its length is the cost;
    # docs/REGISTRY.md). Compromised, withdrawn and replaced certificates stay until they expire.
    device_crl_decommissioned_days: int = Field(default=30, ge=1, le=3650)
    # A device certificate this close to its expiry raises `certificate_expiring`.
    certificate_expiry_warning_days: int = Field(default=30, ge=1, le=365)

    db_pool_min: int = Field(default=2, ge=1)
    db_pool_max: int = Field(default=10, ge=1)

    heartbeat_batch_size: int = Field(default=500, ge=1)
    # A write takes every row waiting, up to this many (one COPY, one transaction).
    heartbeat_batch_max: int = Field(default=10_000, ge=1)
    # Heartbeat batches written at once, each on a connection of its own (a second writer
    # writes more, and costs the alarms' commit latency: BENCHMARKS.md has the figures).
    heartbeat_writers: int = Field(default=1, ge=1, le=16)
    heartbeat_flush_ms: int = Field(default=200, ge=1)
    heartbeat_buffer_max: int = Field(default=200_000, ge=1000)
    status_buffer_max: int = Field(default=50_000, ge=1000)
    # Each database write attempt of the ingest gives up after this long and is retried (a
    # hung database must not hold it forever); buffered rows get this long at shutdown.
    db_write_timeout_s: float = Field(default=10, gt=0)
    shutdown_flush_s: float = Field(default=10, gt=0)
    alarm_workers: int = Field(default=16, ge=1)
    # Alarms the broker may have sent the ingest without a PUBACK yet (the MQTT 5 receive
    # maximum of the alarm session): what this process holds while the database is away.
    alarm_inflight_max: int = Field(default=100, ge=1, le=65535)
    quarantine_keep: int = Field(default=10_000, ge=100)

    # Retention (docs/OPERATIONS.md): heartbeats and status events, then resolved alarms and
    # alerts (seven years) and the audit log; the ingest role prunes once a day.
    heartbeat_retention_days: int = Field(default=90, ge=1)
    record_retention_days: int = Field(default=2557, ge=1)
    retention_interval_s: float = Field(default=86_400, gt=0)

    # Alert rules (docs/ALERTS.md); GET /api/v1/alert-rules answers the values in force.
    alarm_ack_target_s: int = Field(default=60, ge=1)
    battery_low_pct: int = Field(default=20, ge=1, le=100)
    battery_ok_pct: int = Field(default=25, ge=1, le=100)
    peripheral_supervision_s: int = Field(default=3600, ge=1)
    flapping_drops: int = Field(default=3, ge=2)
    flapping_window_s: int = Field(default=900, ge=1)
    area_min_devices: int = Field(default=5, ge=2)
    area_min_share: float = Field(default=0.2, ge=0, le=1)
    area_window_s: int = Field(default=300, ge=1)
    engine_lease_s: int = Field(default=15, ge=3)
    # The feed canary (docs/ALERTS.md): the service publishes to itself through the broker this
    # often and expects it back on its telemetry session; missing for two intervals = the feed
    # is stale (/healthz red, no deadline judged). An engine whose feed stays unproven this long
    # gives its partitions up to engines that hear the devices.
    canary_interval_s: float = Field(default=1.0, gt=0, le=60)
    engine_feed_release_s: float = Field(default=15, gt=0)
    # The alert engine's writer is stalled (/healthz red, alert_writer_stalled raised once it
    # writes again) when nothing was written for this long while actions wait.
    alert_writer_stall_s: float = Field(default=30, gt=0)

    # GET /events sends a comment this often when there is nothing to send, so proxies and
    # the console can tell a quiet stream from a dead one.
    # GET /stats/fleet counts the whole fleet: its figures are shared for this long.
    fleet_stats_max_age_s: float = Field(default=5, ge=0, le=300)
    event_keepalive_s: float = Field(default=15, gt=0, le=300)

    def broker(self) -> BrokerAddress:
        """Where the broker is and how to verify it (TELECARE_MQTT_URL, TELECARE_MQTT_CA_FILE)."""
        return parse_mqtt_url(
            self.mqtt_url,
            ca_file=self.mqtt_ca_file,
            cert_file=self.mqtt_cert_file,
            key_file=self.mqtt_key_file,
        )

    @model_validator(mode="after")
    def _battery_hysteresis(self) -> Self:
        if self.battery_ok_pct < self.battery_low_pct:
            raise ValueError("TELECARE_BATTERY_OK_PCT must be >= TELECARE_BATTERY_LOW_PCT")
        return self

    @model_validator(mode="after")
    def _device_ca_given(self) -> Self:
        if self.broker_credentials == "certificates":
            missing = [
                f"TELECARE_{name.upper()}"
                for name in ("device_ca_cert_file", "device_ca_key_file", "device_crl_file")
                if not getattr(self, name)
            ]
            if missing:
                raise ValueError(
                    "TELECARE_BROKER_CREDENTIALS=certificates needs "
                    + ", ".join(missing)
                    + " (made by `telecare ca init`)"
                )
        return self

    @field_validator("mqtt_url")
    @classmethod
    def _mqtt_url_scheme(cls, value: str) -> str:
        if urlsplit(value).scheme not in {"mqtt", "mqtts"}:
            raise ValueError("TELECARE_MQTT_URL must start with mqtt:// or mqtts://")
        return value


__all__ = ["ROLES", "Settings"]
