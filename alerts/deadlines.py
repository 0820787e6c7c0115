"""Liveness deadlines in memory: O(1) per heartbeat, O(log n) per expiry, one heap entry a device.

A heartbeat only moves the device's deadline later (an attribute write). The heap keeps one
entry per device; when an entry comes due but its device's deadline has moved on, it is pushed
back with the real deadline. So the heap never grows with the heartbeat rate.
"""

from __future__ import annotations

import heapq


class _Entry:
    __slots__ = ("deadline", "overdue", "window_s")

    def __init__(self, deadline: float, window_s: float) -> None:
        self.deadline = deadline
        self.window_s = window_s
        self.overdue = False


class DeadlineTracker:
    """Which devices have gone `window_s` without a heartbeat. Times are `time.monotonic()`."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        self._heap: list[tuple[float, str]] = []

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, device_id: str) -> bool:
        return device_id in self._entries

    def track(self, device_id: str, *, deadline: float, window_s: float, overdue: bool) -> None:
        """Start (or restart) tracking a device whose next deadline is known."""
        entry = self._entries.get(device_id)
        if entry is None:
            entry = self._entries[device_id] = _Entry(deadline, window_s)
            heapq.heappush(self._heap, (deadline, device_id))
        else:
            if deadline < entry.deadline:
                heapq.heappush(self._heap, (deadline, device_id))
            entry.deadline = deadline
            entry.window_s = window_s
        entry.overdue = overdue

    def forget(self, device_id: str) -> None:
        self._entries.pop(device_id, None)  # its heap entry is dropped when it comes due

    def beat(self, device_id: str, now: float) -> bool | None:
        """Record a heartbeat: True if the device was overdue (it is back), None if untracked."""
        entry = self._entries.get(device_id)
        if entry is None:
            return None
        entry.deadline = now + entry.window_s
        was_overdue = entry.overdue
        entry.overdue = False
        return was_overdue

    def is_overdue(self, device_id: str) -> bool:
        entry = self._entries.get(device_id)
        return entry is not None and entry.overdue

    def pop_overdue(self, now: float) -> list[str]:
        """Devices whose deadline passed since the last call; each is reported once."""
        due = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, device_id = heapq.heappop(heap)
            entry = self._entries.get(device_id)
            if entry is None:
                continue
            if entry.deadline > now:
                heapq.heappush(heap, (entry.deadline, device_id))
            elif not entry.overdue:
                entry.overdue = True
                due.append(device_id)
                # Re-arm one window later so a device that beats again is tracked again.
                heapq.heappush(heap, (now + entry.window_s, device_id))
            else:
                heapq.heappush(heap, (now + entry.window_s, device_id))
        return due

    def next_deadline(self) -> float | None:
        return self._heap[0][0] if self._heap else None
