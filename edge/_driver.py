"""The interfaces every sensor source implements.

A polled driver (simulated, Modbus) is read by the agent on its sampling clock; a pushed
source (the HJ 212 bridge, where a data logger sends when it likes) hands the agent samples
as they come. Both return values in the unit the sensor reports; the agent converts them to
the canonical unit and applies calibration, once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import NamedTuple, Protocol


class SensorValue(NamedTuple):
    """One value from a sensor."""

    quantity: str
    value: float  # NaN when the sensor gave none
    unit: str  # the unit the sensor reports
    flag: str  # HJ 212 data flag, "N" when normal


class Sample(NamedTuple):
    """Values a pushed source received for one sample time (epoch seconds UTC)."""

    sample_time: float
    values: list[SensorValue]


class Driver(Protocol):
    async def read(self, sample_time: float) -> list[SensorValue]:
        """Sample every channel; ``sample_time`` is epoch seconds UTC of this sample.

        A channel that cannot be read gives a NaN value with flag "D" (fault), not an error:
        the agent must keep sampling the others."""
        ...


class PushSource(Protocol):
    def samples(self) -> AsyncIterator[Sample]:
        """Samples as the source receives them."""
        ...
