"""Firmware simulator: simulated sensors and a fleet of real edge agents driving them.

Scenarios (``load_scenario``) are data files: baseline signal parameters, pollution episodes,
sensor faults, network faults and replayed station data; ``Scenario.ground_truth`` and
``write_labels`` give the labels to score detection against. ``SimulatedDriver`` is the edge
driver of one simulated node. Network faults are applied by the fleet runner; what it must
do for each kind is written in ``firmware_sim._network``.
"""

from firmware_sim._baseline import Baseline, Harmonic
from firmware_sim._faults import SensorFault
from firmware_sim._fleet import Fleet, FleetRun, run_fleet
from firmware_sim._labels import LABEL_FIELDS, write_labels
from firmware_sim._network import (
    BrokerRestart,
    ClockSkew,
    DuplicateDelivery,
    NetworkFault,
    NodeOffline,
    OutOfOrder,
)
from firmware_sim._parse import ScenarioError
from firmware_sim._plume import Episode, Reach
from firmware_sim._replay import Replay
from firmware_sim._scenario import Scenario, load_scenario
from firmware_sim._signals import SimulatedDriver

__all__ = [
    "LABEL_FIELDS",
    "Baseline",
    "BrokerRestart",
    "ClockSkew",
    "DuplicateDelivery",
    "Episode",
    "Fleet",
    "FleetRun",
    "Harmonic",
    "NetworkFault",
    "NodeOffline",
    "OutOfOrder",
    "Reach",
    "Replay",
    "Scenario",
    "ScenarioError",
    "SensorFault",
    "SimulatedDriver",
    "load_scenario",
    "run_fleet",
    "write_labels",
]
