"""The alarm path, device to operator: `store` commits an alarm before it is acknowledged to
the device (and dedupes repeats), `queries` reads alarms with what operators did, `answer_times`
measures how fast operators took them.

Elsewhere, by the side they belong to: the MQTT side that receives alarms and publishes acks is
ingest/alarm_intake.py; the `alarm_unhandled` rule is the engine's (alerts/unhandled_alarms.py);
an operator taking an alarm is an action on the queue (operator_queue/actions.py)."""
