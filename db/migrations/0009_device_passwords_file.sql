-- Devices that cannot present a client certificate (docs/REGISTRY.md, "Devices without a
-- certificate"): where device certificates are in use, such a device authenticates with its
-- MQTT password against a Mosquitto password file that the backend renders from these rows in
-- batches, instead of one broker change per device.
--
-- Every device registered before is a password device (dynamic security, or a development
-- broker); new registrations say which they are.
ALTER TABLE devices
    ADD COLUMN credential_kind text NOT NULL DEFAULT 'password',
    ADD COLUMN mqtt_password_broker text,
    ADD CONSTRAINT devices_credential_kind CHECK (credential_kind IN ('password', 'certificate'));

-- What the password file lists: active password devices with the broker's hash of their
-- password (Mosquitto's salted PBKDF2-SHA512, `$7$...`), read in one index-only pass.
CREATE INDEX devices_password_file ON devices (device_id) INCLUDE (mqtt_password_broker)
    WHERE credential_kind = 'password' AND decommissioned_at IS NULL
      AND mqtt_password_broker IS NOT NULL;

-- When a file the broker reads from the backend last needed rewriting: touched in the same
-- transaction as the change, so the publisher sees every change with one indexed read.
CREATE TABLE broker_file_changes (
    name       text PRIMARY KEY,
    changed_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO broker_file_changes (name) VALUES ('passwords');
