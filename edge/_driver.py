"""The driver interface every sensor source implements (simulated, Modbus, HJ 212 bridge)."""

from __future__ import annotations

from typing import NamedTuple, Protocol


class SensorValue(NamedTuple):
    """One value from a sensor, already in the canonical unit (conversion happens here, once)."""

    quantity: str
    value: float  # NaN when the sensor gave none
    unit: str
    flag: str  # HJ 212 data flag, "N" when normal


class Driver(Protocol):
    def read(self, sample_time: float) -> list[SensorValue]:
        """Sample every channel; ``sample_time`` is epoch seconds UTC of this sample."""
        ...
