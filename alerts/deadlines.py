"""Liveness deadlines in memory: O(1) per heartbeat, O(log n) per expiry, one heap entry a device.

A heartbeat only moves the device's anchor later (an attribute write). The heap keeps one live
entry per device that is not overdue; when an entry comes due but its device's deadline has
moved on, it is pushed back with the real deadline. So the heap never grows with the heartbeat
rate, and nothing ever scans the fleet.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator


class TrackedDevice:
    """What the engine keeps per device: about 200 bytes with its dictionary and heap entries."""

    __slots__ = ("anchor", "flags", "queued", "window_s")

    def __init__(self, anchor: float, window_s: int, flags: int) -> None:
        self.anchor = anchor  # last heartbeat received, registration or stage change
        self.window_s = window_s  # interval + grace
        self.flags = flags  # alerts.flags
        self.queued = 0.0  # the deadline of this device's live heap entry; 0: none

    @property
    def deadline(self) -> float:
        return self.anchor + self.window_s


class DeadlineHeap:
    """Devices by deadline. The owner sets `anchor`; `due()` yields those whose deadline passed."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, str]] = []

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, device_id: str, device: TrackedDevice) -> None:
        """Make sure the device has a live entry no later than its deadline."""
        deadline = device.deadline
        if device.queued and device.queued <= deadline:
            return  # the live entry comes first and is pushed on if the deadline moved
        device.queued = deadline
        heapq.heappush(self._heap, (deadline, device_id))

    def due(self, now: float, devices: dict[str, TrackedDevice]) -> Iterator[str]:
        """Device ids whose deadline is at or before `now`; their entries leave the heap."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            queued, device_id = heapq.heappop(heap)
            device = devices.get(device_id)
            if device is None or device.queued != queued:
                continue  # forgotten, or a stale entry of a deadline that moved earlier
            device.queued = 0.0
            deadline = device.deadline
            if deadline > now:
                device.queued = deadline
                heapq.heappush(heap, (deadline, device_id))
            else:
                yield device_id

    def next_at(self) -> float | None:
        return self._heap[0][0] if self._heap else None
