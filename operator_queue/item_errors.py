"""What can go wrong with an operator's action on an alert or alarm; api/ maps these to HTTP."""

from __future__ import annotations


class ItemNotFound(LookupError):
    def __init__(self, kind: str, item_id: int) -> None:
        super().__init__(f"{kind} {item_id} does not exist")
        self.kind = kind
        self.item_id = item_id


class InvalidTransition(ValueError):
    def __init__(self, kind: str, item_id: int, state: str, action: str) -> None:
        super().__init__(f"{kind} {item_id} is {state}: it cannot be {action} now")
        self.kind = kind
        self.item_id = item_id
        self.state = state
        self.action = action
