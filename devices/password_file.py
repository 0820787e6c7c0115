"""Mosquitto's password file, for devices that cannot present a client certificate.

Mosquitto 2.0 checks a password against `user:$7$<iterations>$<salt>$<hash>` lines (PBKDF2 with
SHA-512, base64), the format `mosquitto_passwd` writes. The backend computes that line once, at
registration or rotation, keeps it in `devices.mqtt_password_broker` and renders the whole file
from the database when it changed (devices/broker_files.py): one rewrite and one broker reload
per batch of changes, never one per device, and nothing in the broker to keep in step but the
file itself. 101 iterations is what mosquitto_passwd uses; the passwords are 192-bit random
secrets (devices/passwords.py), so the hash's cost adds nothing against guessing.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterable

ITERATIONS = 101
SALT_BYTES = 12


def mosquitto_hash(password: str, *, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else os.urandom(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, ITERATIONS, 64)
    encode = base64.b64encode
    return f"$7${ITERATIONS}${encode(salt).decode()}${encode(digest).decode()}"


def render(entries: Iterable[tuple[str, str]]) -> str:
    """The file's text from (username, hash) rows; usernames are device ids (no colon)."""
    return "".join(f"{username}:{hashed}\n" for username, hashed in entries)
