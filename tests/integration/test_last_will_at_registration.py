"""A Last Will that arrives a few milliseconds after `POST /devices`, before the engine has
loaded the new device, still raises connection_lost (the engine holds it until it loads)."""

from __future__ import annotations

import time
import uuid

import httpx
import psycopg

from telecare.mqtt.client import connect
from telecare.mqtt.packets import Will
from telecare.protocol.messages import MessageKind, topic_for
from telecare.service import Service
from tests.brokers import PrivateBroker
from tests.support import wait_for

WILL = b'{"state":"offline","reason":"lwt"}'


async def test_a_last_will_within_5_ms_of_registration_raises_connection_lost(
    service: Service, broker: PrivateBroker, admin: httpx.AsyncClient
) -> None:
    ids = [f"lw-{uuid.uuid4().hex[:10]}" for _ in range(5)]
    gaps = []
    for device_id in ids:
        status = topic_for(device_id, MessageKind.STATUS)
        conn = await connect(
            broker.address, client_id=device_id, will=Will(status, WILL, qos=1, retain=False)
        )
        answer = await admin.post(
            "/devices", json={"device_id": device_id, "heartbeat_interval_s": 3600}
        )
        registered = time.monotonic()
        conn.abort()  # the broker publishes the Last Will now
        gaps.append(time.monotonic() - registered)
        assert answer.status_code == 201, answer.text
    assert max(gaps) < 0.005

    async def all_alerted() -> bool:
        async with await psycopg.AsyncConnection.connect(service.settings.database_url) as conn:
            cur = await conn.execute(
                "SELECT count(*) FROM alerts WHERE device_id = ANY(%s)"
                " AND type = 'connection_lost' AND state = 'open'",
                [ids],
            )
            row = await cur.fetchone()
        return row is not None and row[0] == len(ids)

    await wait_for(all_alerted, within_s=10, what="connection_lost for every device")
    # The session's service is shared: five devices offline at once could add up, with other
    # tests' devices, to an area outage that groups their alerts. Decommissioned, they count no
    # more (their alerts are resolved by the system).
    for device_id in ids:
        assert (await admin.delete(f"/devices/{device_id}")).status_code in (200, 204)
