"""Experiment 3 of bench/broker_identity.py: broker memory and handshake cost per connection.

The same idle clients connect in batches to a broker with the device listener (client
certificate, empty CRL) and to one with a plaintext anonymous listener; after each batch we
read the broker's resident memory, and during it the connection rate and the broker's own CPU
time per connection, which is what bounds the rate once the clients are faster than this
2-core machine can make them.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from bench.broker_identity_broker import Broker, tls_listener
from bench.broker_identity_crl import Row, connect_row
from bench.broker_identity_mqtt import ClientSpec, Holders
from bench.broker_identity_pki import ClientCert, Pki
from tests.brokers import free_port


def memory_session(
    folder: Path, pki: Pki, certs: list[ClientCert] | None, steps: list[int]
) -> list[Row]:
    """`certs` connect over TLS with client certificates; None: plaintext, anonymous."""
    folder.mkdir(parents=True)
    port = free_port()
    kind = "plaintext" if certs is None else "tls"
    if certs is None:
        config = f"per_listener_settings false\nallow_anonymous true\nlistener {port} 127.0.0.1"
        specs = [ClientSpec(f"plain-{n:06d}") for n in range(max(steps))]
    else:
        crl = folder / "devices.crl"
        pki.write_crl(crl, [])
        config = tls_listener(port, pki.ca_cert, pki.server_cert, pki.server_key, crl)
        specs = [ClientSpec(c.cn, c.pem) for c in certs[: max(steps)]]
    rows: list[Row] = []
    with Broker(folder / "broker", config, [port]) as broker, contextlib.ExitStack() as stack:
        idle = broker.rss_mib()
        rows.append({"kind": kind, "connections": 0, "rss_mib": idle})
        done = 0
        for step in steps:
            if step <= done:
                continue
            held = stack.enter_context(
                Holders(port, pki.ca_cert if certs else None, specs[done:step])
            )
            row: Row = {"kind": kind, "connections": step} | connect_row(broker, held)
            row["batch"] = step - done
            row["kib_per_connection"] = 1024 * (row["rss_mib"] - idle) / max(step, 1)
            rows.append(row)
            done = step
    return rows
