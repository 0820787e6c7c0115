"""MQTT transport: the lean asyncio client and its packets, a subscription that lasts, and
the persistent session with application acknowledgements that the alarm path needs."""
