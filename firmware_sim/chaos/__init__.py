"""Chaos scenarios: faults on real Mosquitto, InfluxDB and the project's processes, with the
readings published, stored and seen by the detector, and the incidents, counted.

A tester's tool (``make chaos``, ``tests/chaos/``), and a composition root like
``tianwang.demo``: it wires every subsystem together. Nothing else in the project imports it.

    python -m firmware_sim.chaos [--only NAME ...] [--keep DIR]
"""

from firmware_sim.chaos._escalation import store_killed
from firmware_sim.chaos._fleet1000 import fleet_reconnect
from firmware_sim.chaos._rig import ChaosResult
from firmware_sim.chaos._scenarios import broker_killed, influx_stopped, ingest_killed, node_cut_off

SCENARIOS = {
    "broker_killed": broker_killed,
    "ingest_killed": ingest_killed,
    "influx_stopped": influx_stopped,
    "node_cut_off": node_cut_off,
    "fleet_reconnect": fleet_reconnect,
    "store_killed": store_killed,
}

__all__ = [
    "SCENARIOS",
    "ChaosResult",
    "broker_killed",
    "fleet_reconnect",
    "influx_stopped",
    "ingest_killed",
    "node_cut_off",
    "store_killed",
]
