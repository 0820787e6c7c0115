"""The operators' queue as the API serves it: alerts listed with their history, an
operator's acknowledge and resolve (of alerts and alarms alike), and the queue's figures.

The alert engine that raises and resolves alerts is a different thing: alerts/."""
