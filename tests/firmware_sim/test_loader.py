"""The scenario loader answers every bad input with a ScenarioError naming the field."""

from __future__ import annotations

import copy
import tempfile
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware_sim import Scenario, ScenarioError, SimulatedDriver, load_scenario
from firmware_sim._scenario import parse_scenario
from tests.conftest import EXAMPLES
from tests.firmware_sim.conftest import read, scenario
from tianwang.quantities import quantity_table
from tianwang.registry import Registry

SCENARIOS = EXAMPLES / "scenarios"
COUNTY_DAY = yaml.safe_load((SCENARIOS / "county_day.yaml").read_text("utf-8"))
EPISODE = {"id": "e", "nodes": ["e1"], "start_min": 10, "duration_min": 30, "add": {"NO2": 5}}
FAULT = {"id": "f", "kind": "drift", "nodes": ["e1"], "start_min": 10, "duration_min": 30,
         "rate_per_h": 1}  # fmt: skip


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        ({"duration_h": -1}, r"^duration_h: must be > 0"),
        ({"duration_h": "two"}, r"^duration_h: must be a finite number"),
        ({"duration_h": float("nan")}, r"^duration_h: must be a finite number"),
        ({"duration_h": 1e13}, r"^duration_h: "),
        ({"seed": -1}, r"^seed: must be an integer"),
        ({"seed": True}, r"^seed: must be an integer"),
        ({"start": "yesterday"}, r"^start: expected RFC 3339"),
        ({"start": "2026-06-01T00:00:00"}, r"^start: needs a UTC offset"),
        ({"start": "1066-10-14T09:00:00+00:00"}, r"^start: must be between 1900 and 2200"),
        ({"name": ["a"]}, r"^name: must be a string"),
        ({"episodez": []}, r"^scenario: unknown field\(s\) \['episodez'\]"),
        ({"baseline": {"PM1": {"mean": 1}}}, r"^baseline.PM1: unknown quantity"),
        ({"baseline": {"NO2": {"mean": "a"}}}, r"^baseline.NO2.mean: must be a finite number"),
        ({"baseline": {"NO2": {"noise": -1}}}, r"^baseline.NO2.noise: must be >= 0"),
        ({"baseline": {"NO2": {"unit": "m"}}}, r"^baseline.NO2.unit: NO2: cannot convert"),
        ({"baseline": {"NO2": {"common_fraction": 2}}}, r"^baseline.NO2.common_fraction"),
        (
            {"baseline": {"NO2": {"diurnal": [{"amplitude": 1}]}}},
            r"^baseline.NO2.diurnal\[0\].peak_h: missing",
        ),
        ({"baseline": {"NO2": {"peak_h": 3}}}, r"^baseline.NO2.peak_h: only with a single"),
        ({"baseline": {"NO2": 5}}, r"^baseline.NO2: expected a mapping"),
        ({"episodes": {"id": "e"}}, r"^episodes: must be a list"),
        ({"episodes": [{**EPISODE, "id": None}]}, r"^episodes\[0\].id: missing"),
        ({"episodes": [{**EPISODE, "id": "a b"}]}, r"^episodes\[0\].id: 'a b' must match"),
        ({"episodes": [{**EPISODE, "nodes": ["zz"]}]}, r"^episodes\[0\].nodes: unknown nodes"),
        ({"episodes": [{**EPISODE, "villages": ["east"]}]}, r"^episodes\[0\].villages: unknown"),
        ({"episodes": [{**EPISODE, "townships": ["west"]}]}, r"^episodes\[0\].townships: unkno"),
        ({"episodes": [{**EPISODE, "start_min": 1440}]}, r"^episodes\[0\].start_min: .* after"),
        ({"episodes": [{**EPISODE, "add": {"PM1": 3}}]}, r"^episodes\[0\].add.PM1: unknown qua"),
        (
            {"episodes": [{**EPISODE, "add": {"COD": 3}}]},
            r"^episodes\[0\].add: no targeted node measures 'COD'",
        ),
        ({"episodes": [{**EPISODE, "kind": "volcano"}]}, r"^episodes\[0\].kind: must be one of"),
        ({"episodes": [{**EPISODE, "decay_km": 2}]}, r"^episodes\[0\].decay_km: only with a sour"),
        (
            {"episodes": [{**EPISODE, "source": {"lat": 36, "lon": 118}, "decay_km": 1}]},
            r"^episodes\[0\]: a source needs exactly one of spread or wind",
        ),
        (
            {
                "episodes": [
                    {
                        **EPISODE,
                        "source": {"lat": 36, "lon": 118},
                        "decay_km": 1,
                        "spread": {"speed_m_s": 0},
                    }
                ]
            },
            r"^episodes\[0\].spread.speed_m_s: must be >= 0.01",
        ),
        (
            {"episodes": [{**EPISODE, "source": {"lat": 95, "lon": 118}}]},
            r"^episodes\[0\].source.lat: must be <= 90",
        ),
        (
            {"episodes": [{k: v for k, v in EPISODE.items() if k != "nodes"}]},
            r"^episodes\[0\]: needs nodes, villages, townships or a source",
        ),
        (
            {"episodes": [EPISODE], "sensor_faults": [{**FAULT, "id": "e"}]},
            r"^sensor_faults\[0\].id: duplicate id 'e'",
        ),
        ({"sensor_faults": [{**FAULT, "kind": "melted"}]}, r"^sensor_faults\[0\].kind: must be"),
        ({"sensor_faults": [{**FAULT, "rate_per_h": None}]}, r"^sensor_faults\[0\].rate_per_h: m"),
        ({"sensor_faults": [{**FAULT, "value": 3}]}, r"^sensor_faults\[0\].value: not a parame"),
        (
            {"sensor_faults": [{**FAULT, "kind": "spike", "rate_per_h": None}]},
            r"^sensor_faults\[0\].duration_min: a spike is one sample",
        ),
        (
            {"sensor_faults": [{**FAULT, "quantities": ["pH"]}]},
            r"^sensor_faults\[0\].quantities: no targeted node measures 'pH'",
        ),
        (
            {"sensor_faults": [{**FAULT, "rate_per_h": {"NO2": 1}, "quantities": ["NO2", "O3"]}]},
            r"^sensor_faults\[0\].rate_per_h: no value for \['O3'\]",
        ),
        (
            {"sensor_faults": [{**FAULT, "duration_min": 1e9}]},
            r"^sensor_faults\[0\].duration_min: must be <=",
        ),
        ({"replay": "dongsi"}, r"^replay: must be a list"),
    ],
)
def test_each_bad_field_is_named(grid: Registry, tmp_path: Path, sections: dict[str, Any],
                                 message: str) -> None:  # fmt: skip
    with pytest.raises(ScenarioError, match=message):
        scenario(grid, tmp_path, **sections)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", r"scenario: expected a mapping, got None"),
        ("- 1\n- 2\n", r"scenario: expected a mapping"),
        ("name: [unclosed\n", r"scenario.yaml: while parsing"),
        ("? [1, 2]\n: 3\n", r"scenario.yaml: "),
        ("\xff\xfe", r"scenario.yaml: "),
    ],
)
def test_unreadable_files(grid: Registry, tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "scenario.yaml"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(ScenarioError, match=message):
        load_scenario(path, grid)
    with pytest.raises(ScenarioError, match=r"nowhere.yaml: "):
        load_scenario(tmp_path / "nowhere.yaml", grid)


def test_the_example_scenarios_load(county: Registry, county_plus: Registry) -> None:
    demo = load_scenario(SCENARIOS / "demo.yaml", county)
    assert (demo.name, demo.duration_h, demo.start, len(demo.episodes)) == ("demo", 2, None, 1)
    day = load_scenario(SCENARIOS / "county_day.yaml", county_plus)
    assert (day.duration_h, len(day.episodes), len(day.sensor_faults)) == (24, 5, 9)
    assert len(day.network_faults) == 6 and len(day.replays) == 1


# --- property-based: random and mutated input never raises anything but ScenarioError --------

QUANTITIES = sorted(quantity_table().quantities)
SCALARS = (
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats()
    | st.text(max_size=12) | st.sampled_from([*QUANTITIES, "e1", "w1", "auto", "east/line"])
    | st.datetimes(timezones=st.sampled_from([UTC])) | st.dates()
)  # fmt: skip
KEYS = st.sampled_from([
    "id", "kind", "nodes", "villages", "townships", "quantities", "start_min", "duration_min",
    "ramp_min", "add", "source", "spread", "wind", "decay_km", "range_km", "lat", "lon",
    "speed_m_s", "from_deg", "rate_per_h", "value", "offset_s", "window", "every", "power_off",
    "mean", "diurnal", "noise", "unit", "station_csv", "from", "columns", "units", *QUANTITIES,
]) | st.text(max_size=6) | st.integers()  # fmt: skip
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=6),
    max_leaves=25,
)
TOP = st.dictionaries(
    st.sampled_from(["name", "start", "duration_h", "seed", "baseline", "replay", "episodes",
                     "sensor_faults", "network_faults", "other"]),
    VALUES | st.lists(st.dictionaries(KEYS, VALUES, max_size=8), max_size=3),
    max_size=6,
)  # fmt: skip
PROPERTY = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])  # fmt: skip


def only_scenario_error(raw: Any, registry: Registry) -> None:
    try:
        result = parse_scenario(raw, registry, SCENARIOS, "fuzz")
    except ScenarioError as exc:
        assert str(exc)
    else:  # a scenario that loads also runs
        assert isinstance(result, Scenario)
        result.ground_truth(0.0)
        start = result.start_time(1.8e9)
        for node in list(registry.nodes.values())[::20]:
            driver = SimulatedDriver(node, result, start)
            for k in range(3):
                assert len(read(driver, start + 60 * k)) == len(node.quantities)


@PROPERTY
@given(raw=TOP | VALUES)
def test_random_input_raises_only_scenario_errors(grid: Registry, raw: Any) -> None:
    only_scenario_error(raw, grid)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


PATHS = _paths(COUNTY_DAY)[1:]


@PROPERTY
@given(data=st.data())
def test_mutated_county_day_raises_only_scenario_errors(
    county_plus: Registry, data: st.DataObject
) -> None:
    raw = copy.deepcopy(COUNTY_DAY)
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(PATHS))
        parent = raw
        try:
            for key in path[:-1]:
                parent = parent[key]
            if data.draw(st.booleans()):
                parent[path[-1]] = data.draw(VALUES)
            elif isinstance(parent, dict):
                del parent[path[-1]]
            else:
                parent.pop(path[-1])
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed or replaced this path
    only_scenario_error(raw, county_plus)


@settings(max_examples=150, deadline=None)
@given(text=st.text(max_size=300), cut=st.integers(0, 5000))
def test_random_and_cut_yaml_text_raises_only_scenario_errors(
    county_plus: Registry, text: str, cut: int
) -> None:
    original = (SCENARIOS / "county_day.yaml").read_text("utf-8")
    with tempfile.TemporaryDirectory() as tmp:
        for body in (text, original[:cut] + text + original[cut + len(text) :]):
            path = Path(tmp) / "scenario.yaml"
            path.write_text(body, "utf-8")
            try:
                load_scenario(path, county_plus)
            except ScenarioError as exc:
                assert str(exc)
