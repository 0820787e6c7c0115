"""The dynamic-security broker goes away under the service: registering a device is refused with
503 and saves nothing, readiness says so, and once the broker is back registration works again.

The broker is a private one, stopped and started by the test; the credential checks on a broker
that stays up are tests/integration/test_broker_credentials.py.
"""

from __future__ import annotations

import uuid

import pytest

from telecare.api.tokens import Role
from telecare.core.settings import Settings
from telecare.service import Service
from tests.brokers import PrivateBroker
from tests.integration.test_broker_credentials import Broker
from tests.support import api_client, wait_for


@pytest.mark.faults
async def test_broker_down_means_503_and_nothing_registered(settings: Settings) -> None:
    with PrivateBroker(dynsec=True) as own_broker:
        own = settings.model_copy(
            update={"mqtt_url": own_broker.url, "broker_credentials": "dynsec"}
        )
        async with Service(own) as service:
            await service.wait_ready()
            assert service.dynsec is not None
            async with await api_client(service, Role.TECHNICIAN) as api:
                own_broker.stop()
                dynsec = service.dynsec

                async def link_down() -> bool:
                    return not dynsec.ready()

                await wait_for(link_down, what="control link down")
                device_id = f"down-{uuid.uuid4().hex[:8]}"
                body = {"device_id": device_id, "heartbeat_interval_s": 60}
                refused = await api.post("/devices", json=body)
                assert refused.status_code == 503
                assert "nothing was saved" in refused.json()["detail"]
                assert (await api.get(f"/devices/{device_id}")).status_code == 404
                health = await api.get(f"{service.api_url}/healthz")
                assert health.json()["checks"]["broker_credentials"] is False

                own_broker.start()
                await service.wait_ready(within_s=60)
                registered = await api.post("/devices", json=body)
                assert registered.status_code == 201, registered.text
            password = registered.json()["mqtt_password"]
            async with Broker(own_broker).device(device_id, password):
                pass
