"""Prometheus counters a monitoring team would graph; one registry per running service."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.messages_received = Counter(
            "telecare_messages_received", "MQTT messages received, by kind", ["kind"], registry=r
        )
        self.messages_rejected = Counter(
            "telecare_messages_rejected", "Messages quarantined, by reason", ["reason"], registry=r
        )
        self.alarm_acks = Counter(
            "telecare_alarm_acks", "Acks published to devices, by result", ["result"], registry=r
        )
        self.heartbeat_batch_size = Histogram(
            "telecare_heartbeat_batch_size",
            "Heartbeats written per batch",
            buckets=(1, 5, 10, 50, 100, 250, 500, 1000, 2500, 5000),
            registry=r,
        )
        self.heartbeat_flush_seconds = Histogram(
            "telecare_heartbeat_flush_seconds",
            "Time to write one heartbeat batch",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r,
        )
        self.heartbeat_buffered = Gauge(
            "telecare_heartbeats_buffered", "Heartbeats waiting to be written", registry=r
        )
        self.db_write_failures = Counter(
            "telecare_db_write_failures",
            "Database writes that failed and are retried",
            ["what"],
            registry=r,
        )
        self.alerts_raised = Counter(
            "telecare_alerts_raised", "Alerts raised, by type", ["type"], registry=r
        )
        self.alerts_resolved = Counter(
            "telecare_alerts_resolved", "Alerts resolved, by type", ["type"], registry=r
        )
        self.alerts_open = Gauge(
            "telecare_alerts_open", "Alerts not yet resolved, by type", ["type"], registry=r
        )
        self.broker_control_seconds = Histogram(
            "telecare_broker_control_seconds",
            "Time the broker took to confirm one batch of dynamic-security commands",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.broker_control_failures = Counter(
            "telecare_broker_control_failures",
            "Credential changes the broker did not confirm (the change was rolled back)",
            registry=r,
        )
        self.devices_registered = Counter(
            "telecare_devices_registered", "Devices registered, by way", ["via"], registry=r
        )
        self.engine_partitions = Gauge(
            "telecare_engine_partitions",
            "Partitions of the fleet (of 64) whose alerts this process owns",
            registry=r,
        )
        self.alert_write_seconds = Histogram(
            "telecare_alert_write_seconds",
            "Time from the engine's decision (raise, resolve, ...) to its commit",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.devices_tracked = Gauge(
            "telecare_devices_tracked", "Devices whose liveness this process tracks", registry=r
        )
        self.event_stream_clients = Gauge(
            "telecare_event_stream_clients",
            "Event streams (GET /events) open now, consoles and integrations",
            registry=r,
        )
        self.event_stream_events_sent = Counter(
            "telecare_event_stream_events_sent",
            "Change events sent on event streams, by kind (one per client and event)",
            ["kind"],
            registry=r,
        )
        self.event_stream_catch_ups = Counter(
            "telecare_event_stream_catch_ups",
            "Times an event stream read missed events back from the table, by reason",
            ["reason"],
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
