"""The alert engine: liveness deadlines and the other device rules, area outages and unhandled
alarms, decided in memory and written in order (docs/ALERTS.md). What operators see and do with
the alerts is operator_queue/."""
