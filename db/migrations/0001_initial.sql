-- Devices, telemetry, alarms, alerts, quarantine and API tokens.

CREATE TABLE devices (
    device_id            text PRIMARY KEY,
    serial               text,
    model                text,
    manufacturer         text,
    resident_ref         text,
    address              text,
    postcode             text,
    postcode_district    text,
    heartbeat_interval_s integer NOT NULL CHECK (heartbeat_interval_s BETWEEN 10 AND 604800),
    heartbeat_grace_s    integer CHECK (heartbeat_grace_s BETWEEN 0 AND 604800),
    migration_stage      text NOT NULL DEFAULT 'analogue',
    stage_changed_at     timestamptz NOT NULL DEFAULT now(),
    registered_at        timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    decommissioned_at    timestamptz,
    mqtt_password_hash   text NOT NULL
);
CREATE INDEX devices_postcode_district ON devices (postcode_district);
CREATE INDEX devices_migration_stage ON devices (migration_stage);

-- The latest known state of each device: one row, upserted once per heartbeat batch.
CREATE TABLE device_state (
    device_id          text PRIMARY KEY REFERENCES devices (device_id),
    last_heartbeat_at  timestamptz,
    last_msg_id        text,
    last_seq           bigint,
    power              text,
    battery_pct        smallint,
    signal_dbm         smallint,
    network            text,
    firmware           text,
    peripherals        jsonb,
    connection         text,
    connection_at      timestamptz,
    connection_reason  text
);

CREATE TABLE heartbeats (
    received_at  timestamptz NOT NULL,
    device_id    text NOT NULL,
    msg_id       text NOT NULL,
    device_ts    timestamptz NOT NULL,
    seq          bigint NOT NULL,
    interval_s   integer NOT NULL,
    power        text NOT NULL,
    battery_pct  smallint,
    signal_dbm   smallint,
    network      text NOT NULL,
    firmware     text,
    peripherals  jsonb
);
CREATE INDEX heartbeats_device_time ON heartbeats (device_id, received_at DESC);

CREATE TABLE device_status_events (
    received_at  timestamptz NOT NULL,
    device_id    text NOT NULL,
    state        text NOT NULL,
    device_ts    timestamptz,
    reason       text
);
CREATE INDEX device_status_events_device_time ON device_status_events (device_id, received_at DESC);

CREATE TABLE alarms (
    id               bigserial PRIMARY KEY,
    device_id        text NOT NULL REFERENCES devices (device_id),
    msg_id           text NOT NULL,
    event            text NOT NULL,
    severity         text NOT NULL,
    device_ts        timestamptz NOT NULL,
    seq              bigint NOT NULL,
    peripheral       text,
    detail           text,
    received_at      timestamptz NOT NULL DEFAULT now(),
    state            text NOT NULL DEFAULT 'open',
    acknowledged_at  timestamptz,
    acknowledged_by  text,
    resolved_at      timestamptz,
    resolved_by      text,
    UNIQUE (device_id, msg_id)
);
CREATE INDEX alarms_received ON alarms (received_at DESC);
CREATE INDEX alarms_open ON alarms (received_at) WHERE state = 'open';

CREATE TABLE alerts (
    id               bigserial PRIMARY KEY,
    device_id        text REFERENCES devices (device_id),
    area             text,
    type             text NOT NULL,
    severity         text NOT NULL,
    state            text NOT NULL DEFAULT 'open',
    raised_at        timestamptz NOT NULL DEFAULT now(),
    acknowledged_at  timestamptz,
    acknowledged_by  text,
    resolved_at      timestamptz,
    resolved_by      text,
    details          jsonb NOT NULL DEFAULT '{}'::jsonb,
    CHECK (state IN ('open', 'acknowledged', 'resolved'))
);
-- At most one unresolved alert of each type per device: a restart can never raise it twice.
CREATE UNIQUE INDEX alerts_one_unresolved ON alerts (device_id, type) WHERE state <> 'resolved';
CREATE INDEX alerts_raised ON alerts (raised_at DESC);

CREATE TABLE alert_history (
    id        bigserial PRIMARY KEY,
    alert_id  bigint NOT NULL REFERENCES alerts (id),
    at        timestamptz NOT NULL DEFAULT now(),
    action    text NOT NULL,
    actor     text NOT NULL,
    note      text
);
CREATE INDEX alert_history_alert ON alert_history (alert_id, at);

CREATE TABLE quarantine (
    id           bigserial PRIMARY KEY,
    received_at  timestamptz NOT NULL DEFAULT now(),
    topic        text NOT NULL,
    device_id    text,
    reason       text NOT NULL,
    detail       text,
    payload      bytea NOT NULL,
    payload_size integer NOT NULL
);
CREATE INDEX quarantine_received ON quarantine (received_at DESC);

CREATE TABLE api_tokens (
    id            bigserial PRIMARY KEY,
    name          text NOT NULL,
    role          text NOT NULL CHECK (role IN ('admin', 'technician', 'operator')),
    token_hash    text NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz
);
