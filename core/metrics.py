"""Prometheus counters a monitoring team would graph; one registry per running service."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)  # process_resident_memory_bytes, cpu, open fds
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
        self.write_buffered = Gauge(
            "telecare_write_buffered",
            "Telemetry rows waiting to be written, by what (heartbeats, statuses)",
            ["what"],
            registry=r,
        )
        self.write_dropped = Counter(
            "telecare_write_dropped",
            "Telemetry rows never written, by what and reason (buffer_full, refused, shutdown)",
            ["what", "reason"],
            registry=r,
        )
        self.mqtt_queued = Gauge(
            "telecare_mqtt_queued",
            "Messages received from the broker and not yet handled, by session",
            ["session"],
            registry=r,
        )
        self.mqtt_dropped = Counter(
            "telecare_mqtt_dropped",
            "Messages dropped because the session's receive queue was full, by session",
            ["session"],
            registry=r,
        )
        self.alarms_in_progress = Gauge(
            "telecare_alarms_in_progress",
            "Alarms received and not yet committed and acknowledged (not PUBACKed meanwhile)",
            registry=r,
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
        self.engine_held_dropped = Counter(
            "telecare_engine_held_dropped",
            "Telemetry of devices not loaded yet that the engine could not hold (bound reached)",
            registry=r,
        )
        self.feed_canaries = Counter(
            "telecare_feed_canaries",
            "Feed canaries that came back through the telemetry session",
            registry=r,
        )
        self.feed_heard_age_seconds = Gauge(
            "telecare_feed_heard_age_seconds",
            "Age of the newest feed canary that came back (the feed is proven up to then)",
            registry=r,
        )
        self.alert_write_seconds = Histogram(
            "telecare_alert_write_seconds",
            "Time from the engine's decision (raise, resolve, ...) to its commit",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.alert_actions_refused = Counter(
            "telecare_alert_actions_refused",
            "Alert actions (raise, resolve, ...) never written, by reason: `database` (the"
            " database refused the action itself) or `queue_full` (the writer's queue was full)",
            ["reason"],
            registry=r,
        )
        self.alert_actions_pending = Gauge(
            "telecare_alert_actions_pending",
            "Alert actions decided and not yet written (queued or being written)",
            registry=r,
        )
        self.alert_writer_stalled = Gauge(
            "telecare_alert_writer_stalled",
            "1 while the alert writer is unhealthy: nothing written for TELECARE_ALERT_WRITER_"
            "STALL_S while actions wait, or actions refused for a full queue within that time",
            registry=r,
        )
        self.auth_failures = Counter(
            "telecare_auth_failures",
            "API requests refused for a missing or invalid token, by reason",
            ["reason"],
            registry=r,
        )
        self.auth_rate_limited = Counter(
            "telecare_auth_rate_limited",
            "API requests refused with 429: too many failed authentications from the address",
            registry=r,
        )
        self.retention_removed = Counter(
            "telecare_retention_removed",
            "Rows removed by the retention job, by table (approximate for dropped chunks)",
            ["table"],
            registry=r,
        )
        self.retention_last_run = Gauge(
            "telecare_retention_last_run_timestamp_seconds",
            "When the retention job last completed (Unix time)",
            registry=r,
        )
        self.crl_published = Gauge(
            "telecare_device_crl_published_timestamp_seconds",
            "When the device revocation list was last written and the broker reloaded (Unix"
            " time); the broker refuses every device once the list is a week old",
            registry=r,
        )
        self.crl_entries = Gauge(
            "telecare_device_crl_entries",
            "Certificates on the device revocation list last published: every device TLS"
            " handshake checks the whole list, so its length is the broker's cost",
            registry=r,
        )
        self.crl_publish_failures = Counter(
            "telecare_device_crl_publish_failures",
            "Attempts to publish the device revocation list that failed, by step",
            ["step"],
            registry=r,
        )
        self.devices_cut_off = Counter(
            "telecare_devices_cut_off",
            "Connections of devices with a revoked certificate closed at the broker",
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
