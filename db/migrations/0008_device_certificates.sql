-- Device certificates (docs/REGISTRY.md, "Device identity"): every certificate the device CA
-- issued, so a technician sees a device's serial, expiry and revocation, the revocation list
-- is built from here, and expiring certificates are found without a scan. The certificate
-- itself and any private key are not kept: a lost bundle is re-issued, not recovered.
CREATE TABLE device_certificates (
    serial             bigint PRIMARY KEY,
    device_id          text NOT NULL REFERENCES devices (device_id),
    fingerprint_sha256 text NOT NULL,
    not_before         timestamptz NOT NULL,
    not_after          timestamptz NOT NULL,
    key_source         text NOT NULL,
    issued_at          timestamptz NOT NULL DEFAULT now(),
    issued_by          text NOT NULL,
    revoked_at         timestamptz,
    revoked_by         text,
    revocation_reason  text,
    CHECK (key_source IN ('csr', 'generated')),
    CHECK (serial > 0),
    CHECK ((revoked_at IS NULL) = (revocation_reason IS NULL))
);
CREATE INDEX device_certificates_device ON device_certificates (device_id, issued_at DESC);
-- The revocation list: revoked certificates that have not expired yet.
CREATE INDEX device_certificates_revoked ON device_certificates (revoked_at)
    WHERE revoked_at IS NOT NULL;
-- Certificates in use, by expiry: what `certificate_expiring` looks for.
CREATE INDEX device_certificates_expiry ON device_certificates (not_after)
    WHERE revoked_at IS NULL;
