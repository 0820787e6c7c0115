"""The error a scenario file (or a time scale that breaks it) is refused with."""

from __future__ import annotations


class ScenarioError(ValueError):
    """A scenario that cannot be run as written; the message names the file and the key."""
