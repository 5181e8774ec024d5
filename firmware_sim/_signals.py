"""Simulated sensor physics: baseline with a daily cycle and noise, plus episodes."""

from __future__ import annotations

import math
import zlib

import numpy as np

from edge import SensorValue
from firmware_sim._scenario import Scenario
from tianwang.quantities import quantity_table
from tianwang.registry import Node

DAY_S = 86400.0
# Pollution peaks in the afternoon (about 15:00 local; the county is UTC+8).
PEAK_UTC_S = 7 * 3600.0


class SimulatedDriver:
    """The edge ``Driver`` for one simulated node."""

    def __init__(self, node: Node, scenario: Scenario, start: float) -> None:
        self.node = node
        self.scenario = scenario
        self.start = start
        self._rng = np.random.default_rng([scenario.seed, zlib.crc32(node.id.encode())])
        self._episodes = [e for e in scenario.episodes if node.id in e.nodes]
        self._units = {q: quantity_table().quantities[q].unit for q in node.quantities}

    async def read(self, sample_time: float) -> list[SensorValue]:
        minute = (sample_time - self.start) / 60.0
        phase = 2 * math.pi * ((sample_time - PEAK_UTC_S) % DAY_S) / DAY_S
        values = []
        for q in self.node.quantities:
            base = self.scenario.baseline.get(q)
            if base is None:
                continue
            value = base.mean + base.diurnal * math.cos(phase) + base.noise * self._rng.normal()
            value += sum(e.excess(q, minute) for e in self._episodes)
            values.append(SensorValue(q, round(max(value, 0.0), 3), self._units[q], "N"))
        return values
