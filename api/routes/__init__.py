"""One router per resource. A module here named like one elsewhere (alarms, heartbeats,
migration, quarantine, tokens, audit, events) is the HTTP side of that same concept."""
