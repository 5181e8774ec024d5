"""Clocks: the wall clock for real nodes, an accelerated one for simulation.

Edge agents and the simulator take a Clock so that two simulated hours can run in
seconds while every timestamp stays a plausible sample time.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Current time, epoch seconds UTC."""
        ...

    async def sleep_until(self, moment: float) -> None:
        """Return once ``now() >= moment``."""
        ...


class WallClock:
    def now(self) -> float:
        return time.time()

    async def sleep_until(self, moment: float) -> None:
        await asyncio.sleep(max(0.0, moment - time.time()))


class AcceleratedClock:
    """Simulated time that starts at ``start`` and runs ``speed`` times faster than real."""

    def __init__(self, start: float, speed: float) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.start = start
        self.speed = speed
        self._origin = time.monotonic()

    def now(self) -> float:
        return self.start + (time.monotonic() - self._origin) * self.speed

    async def sleep_until(self, moment: float) -> None:
        await asyncio.sleep(max(0.0, (moment - self.now()) / self.speed))
