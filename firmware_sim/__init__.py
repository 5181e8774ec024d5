"""Firmware simulator: simulated sensors and a fleet of real edge agents driving them."""

from firmware_sim._fleet import Fleet, FleetRun, run_fleet
from firmware_sim._scenario import Baseline, Episode, Scenario, ScenarioError, load_scenario
from firmware_sim._signals import SimulatedDriver

__all__ = [
    "Baseline",
    "Episode",
    "Fleet",
    "FleetRun",
    "Scenario",
    "ScenarioError",
    "SimulatedDriver",
    "load_scenario",
    "run_fleet",
]
