"""Per-device MQTT passwords: generated here, shown once, stored only as a salted hash."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

_ITERATIONS = 100_000


def new_password() -> str:
    return secrets.token_urlsafe(24)


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, _ITERATIONS)
    b64 = base64.b64encode
    return f"pbkdf2-sha512${_ITERATIONS}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    scheme, iterations, salt_b64, digest_b64 = stored.split("$")
    if scheme != "pbkdf2-sha512":
        return False
    digest = hashlib.pbkdf2_hmac(
        "sha512", password.encode(), base64.b64decode(salt_b64), int(iterations)
    )
    return hmac.compare_digest(digest, base64.b64decode(digest_b64))
