"""Per-device MQTT passwords: generated here, shown once, stored only as a hash.

The hash is a plain SHA-256, not a slow KDF, on purpose. A slow KDF protects passwords people
choose, which can be guessed; these are 192-bit random secrets (`token_urlsafe(24)`), so a
stolen hash cannot be reversed by guessing whatever the hash costs, and a salt adds nothing.
PBKDF2 at 100k iterations cost tens of milliseconds of CPU per device, which made bulk
imports and a simulator registering thousands of devices slow for no security gain. The
broker keeps its own salted PBKDF2 of the password (dynamic security), which is what devices
authenticate against.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

_SCHEME = "sha256"


def new_password() -> str:
    return secrets.token_urlsafe(24)


def hash_password(password: str) -> str:
    return f"{_SCHEME}${hashlib.sha256(password.encode()).hexdigest()}"


def verify_password(password: str, stored: str) -> bool:
    scheme, _, digest = stored.partition("$")
    if scheme != _SCHEME:
        return False
    return hmac.compare_digest(hashlib.sha256(password.encode()).hexdigest(), digest)
