"""Typed configuration, read from TELECARE_* environment variables (and an optional .env file)."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ROLES = frozenset({"ingest", "alerts", "api"})


class Settings(BaseSettings):
    """Everything the service needs to know about its surroundings."""

    model_config = SettingsConfigDict(env_prefix="TELECARE_", env_file=".env", extra="ignore")

    database_url: str = "postgresql://postgres@127.0.0.1:5432/telecare"
    mqtt_url: str = "mqtt://127.0.0.1:1883"
    mqtt_client_id: str = "telecare-ingest"
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    log_level: str = "INFO"

    db_pool_min: int = Field(default=2, ge=1)
    db_pool_max: int = Field(default=10, ge=1)

    heartbeat_batch_size: int = Field(default=500, ge=1)
    heartbeat_flush_ms: int = Field(default=200, ge=1)
    heartbeat_buffer_max: int = Field(default=200_000, ge=1000)
    alarm_workers: int = Field(default=16, ge=1)
    quarantine_keep: int = Field(default=10_000, ge=100)

    alarm_ack_target_s: int = Field(default=60, ge=1)

    @field_validator("mqtt_url")
    @classmethod
    def _mqtt_url_scheme(cls, value: str) -> str:
        if urlsplit(value).scheme not in {"mqtt", "mqtts"}:
            raise ValueError("TELECARE_MQTT_URL must start with mqtt:// or mqtts://")
        return value


__all__ = ["ROLES", "Settings"]
