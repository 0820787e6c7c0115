"""What every part shares and that knows nothing of the others: settings, logs, metrics,
back-off and retry, the change events of alarms and alerts, storable text, the broker URL."""
