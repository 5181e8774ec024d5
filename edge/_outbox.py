"""Outbox: readings wait here, numbered, until the broker has acknowledged them.

This in-memory outbox keeps readings across broker outages while the agent runs; the
persistent SQLite outbox (kill -9 safe) replaces it behind the same methods.
"""

from __future__ import annotations

from collections import deque

from tianwang.codec import Reading


class MemoryOutbox:
    def __init__(self, next_seq: int = 0) -> None:
        self._pending: deque[list[Reading]] = deque()
        self._next_seq = next_seq

    def next_seq(self) -> int:
        seq = self._next_seq
        self._next_seq += 1
        return seq

    def put(self, readings: list[Reading]) -> None:
        self._pending.append(readings)

    def peek(self) -> list[Reading] | None:
        return self._pending[0] if self._pending else None

    def ack(self) -> None:
        """The oldest message was acknowledged by the broker: forget it."""
        self._pending.popleft()

    def __len__(self) -> int:
        return len(self._pending)
