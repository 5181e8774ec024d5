"""Network faults: typed, frozen, and the queries the fleet runner applies them with."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from firmware_sim import (
    BrokerRestart,
    ClockSkew,
    DuplicateDelivery,
    NodeOffline,
    OutOfOrder,
    Scenario,
    ScenarioError,
    load_scenario,
)
from tests.conftest import EXAMPLES
from tests.firmware_sim.conftest import scenario
from tianwang.registry import Registry


@pytest.fixture(scope="module")
def day(county_plus: Registry) -> Scenario:
    return load_scenario(EXAMPLES / "scenarios" / "county_day.yaml", county_plus)


def test_each_kind_is_its_own_frozen_type(day: Scenario) -> None:
    kinds = {type(f): f for f in day.network_faults}
    assert set(kinds) == {NodeOffline, BrokerRestart, DuplicateDelivery, OutOfOrder, ClockSkew}
    assert {f.kind for f in day.network_faults} == {
        "node_offline", "broker_restart", "duplicate_delivery", "out_of_order", "clock_skew",
    }  # fmt: skip
    skew = kinds[ClockSkew]
    assert (skew.nodes, skew.offset_s, skew.start_min, skew.duration_min) == (
        {"yy-0064"}, 28800, 1000, 200)  # fmt: skip
    assert kinds[OutOfOrder].window == 4 and kinds[DuplicateDelivery].every == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        skew.offset_s = 0  # type: ignore[misc]


def test_offline_windows(day: Scenario) -> None:
    start = day.start
    assert start is not None
    assert day.offline_windows("yy-0021", start) == [(start + 500 * 60, start + 560 * 60)]
    assert day.offline_windows("yy-0021") == [(30000.0, 33600.0)]  # relative to the start
    assert day.offline_windows("yy-0001") == []
    (power_cut,) = [f for f in day.network_faults_for("yy-0040") if isinstance(f, NodeOffline)]
    assert power_cut.power_off


def test_broker_restarts_affect_every_node(day: Scenario) -> None:
    assert day.broker_downtimes() == [(50400.0, 50520.0)]
    for node in ("yy-0001", "yy-w01"):
        assert any(isinstance(f, BrokerRestart) for f in day.network_faults_for(node))


def test_clock_offset_only_inside_the_window(day: Scenario) -> None:
    assert day.clock_offset_s("yy-0064", 999 * 60) == 0
    assert day.clock_offset_s("yy-0064", 1000 * 60) == 28800
    assert day.clock_offset_s("yy-0064", 1199.9 * 60) == 28800
    assert day.clock_offset_s("yy-0064", 1200 * 60) == 0
    assert day.clock_offset_s("yy-0063", 1100 * 60) == 0


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ({"kind": "broker_restart", "nodes": ["e1"]}, r"network_faults\[0\]: unknown field"),
        ({"kind": "clock_skew", "nodes": ["e1"], "offset_s": 0}, r"\.offset_s: must not be 0"),
        ({"kind": "out_of_order", "nodes": ["e1"], "window": 1}, r"\.window: must be an integer"),
        ({"kind": "node_offline"}, r"network_faults\[0\]: needs nodes"),
        ({"kind": "node_offline", "nodes": ["e1"], "power_off": "yes"}, r"\.power_off: must be"),
        ({"kind": "cable_cut", "nodes": ["e1"]}, r"network_faults\[0\]\.kind: must be one of"),
        ({"kind": "duplicate_delivery", "nodes": ["e1"], "window": 3}, r"unknown field"),
    ],
)
def test_bad_network_faults_are_named(grid: Registry, tmp_path: Path, fault: dict[str, object],
                                      message: str) -> None:  # fmt: skip
    raw = {"id": "n", "start_min": 10, "duration_min": 5, **fault}
    with pytest.raises(ScenarioError, match=message):
        scenario(grid, tmp_path, network_faults=[raw])
