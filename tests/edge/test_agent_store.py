"""What the agent stores for a sample: calibration, unit conversion, pre-check, odd flags."""

from __future__ import annotations

import math

import pytest

from edge import AgentConfig, Calibration, EdgeAgent, Outbox, SensorValue, Settings
from tianwang.clock import AcceleratedClock
from tianwang.mqtt import BrokerAddress
from tianwang.topics import NodeTopic

T0 = 1795766400.0


def agent(settings: Settings) -> EdgeAgent:
    place = NodeTopic("yiyuan", "nanma", "dongli", "yy-0001")
    config = AgentConfig(place, BrokerAddress("127.0.0.1", 1), settings)
    return EdgeAgent(config, [], AcceleratedClock(T0, 1.0), outbox=Outbox(":memory:", "yy-0001"))


def test_calibration_then_conversion_then_precheck() -> None:
    a = agent(Settings(calibration={"NO2": Calibration(2.0, 1.0)},
                       precheck={"CO": (0.0, 5.0)}))  # fmt: skip
    no2, co, co_ok = a.store(T0, [SensorValue("NO2", 10.0, "ppb", "N"),
                                  SensorValue("CO", 6.0, "ppm", "N"),
                                  SensorValue("CO", 1.0, "mg/m3", "N")])  # fmt: skip
    assert no2.value == pytest.approx((2 * 10 + 1) * 46.0055 / 24.465)
    assert (no2.unit, no2.flag) == ("ug/m3", "N")
    assert co.value == pytest.approx(6 * 28.0101 / 24.465) and co.flag == "T"  # over 5 mg/m3
    assert (co_ok.value, co_ok.flag) == (1.0, "N")
    assert [r.seq for r in (no2, co, co_ok)] == [0, 1, 2]


def test_a_flag_the_protocol_does_not_know_becomes_a_fault() -> None:
    (reading,) = agent(Settings()).store(T0, [SensorValue("SO2", 12.0, "ug/m3", "X")])
    assert reading.flag == "D" and reading.value == 12.0


def test_a_fault_flag_is_kept_and_a_missing_value_stays_missing() -> None:
    (reading,) = agent(Settings(precheck={"O3": (0.0, 1.0)})).store(
        T0, [SensorValue("O3", math.nan, "ug/m3", "D")]
    )
    assert reading.flag == "D" and math.isnan(reading.value)
