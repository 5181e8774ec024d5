"""Episodes: plumes that reach farther nodes later and weaker, wind, the demo's shape."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from firmware_sim import Episode, ScenarioError, SimulatedDriver, load_scenario
from firmware_sim._plume import EpisodeTrack, haversine_km
from tests.conftest import EXAMPLES
from tests.firmware_sim.conftest import AIR, quiet, scenario, series
from tianwang.registry import Registry

SOURCE = {"lat": 36.0, "lon": 118.0}  # at node e0; e1, e2, e4, e8 are 1, 2, 4, 8 km east


def plume(**extra: object) -> dict[str, object]:
    return {"id": "p", "source": SOURCE, "spread": {"speed_m_s": 1.0}, "decay_km": 2.0,
            "start_min": 60, "duration_min": 120, "ramp_min": 0, "add": {"NO2": 100},
            **extra}  # fmt: skip


def test_the_grid_is_where_the_test_thinks(grid: Registry) -> None:
    for name, km in (("e1", 1), ("e2", 2), ("e4", 4), ("e8", 8)):
        node = grid.nodes[name]
        d = haversine_km(36.0, 118.0, np.array([node.lat]), np.array([node.lon]))[0]
        assert d == pytest.approx(km, rel=2e-3)


def test_a_node_twice_as_far_gets_the_plume_later_and_smaller(
    grid: Registry, tmp_path: Path
) -> None:
    (e,) = scenario(grid, tmp_path, episodes=[plume()]).episodes
    assert e.nodes == {"e0", "e1", "e2", "e4", "n2"}  # range 3 x 2 km: not e8 at 8 km
    one, two, four = e.reach_of("e1"), e.reach_of("e2"), e.reach_of("e4")
    assert two.delay_min == pytest.approx(2 * one.delay_min, rel=1e-3)
    assert four.delay_min == pytest.approx(2 * two.delay_min, rel=1e-3)
    assert one.delay_min == pytest.approx(1000 / 1.0 / 60, rel=3e-3)  # 1 km at 1 m/s
    assert one.scale == pytest.approx(math.exp(-0.5), rel=1e-3)
    assert two.scale == pytest.approx(math.exp(-1.0), rel=1e-3)
    assert two.scale < one.scale and four.scale < two.scale
    assert e.reach_of("n2").delay_min == pytest.approx(two.delay_min, rel=5e-3)  # isotropic


def test_read_shows_the_delay_and_the_decay(grid: Registry, tmp_path: Path) -> None:
    sc = scenario(grid, tmp_path, baseline=quiet(*AIR), episodes=[plume()])
    start = sc.start_time(0.0)
    times = [start + 60 * k for k in range(0, 300)]
    no2 = {n: np.array(series(SimulatedDriver(grid.nodes[n], sc, start), times, "NO2")) - 10
           for n in ("e0", "e1", "e2", "e8")}  # fmt: skip
    arrival = {n: int(np.argmax(v > 0.5)) for n, v in no2.items() if v.max() > 0}
    assert arrival["e0"] < arrival["e1"] < arrival["e2"]
    assert arrival["e1"] == math.ceil(60 + 1000 / 60)  # first whole minute after the arrival
    assert no2["e1"].max() == pytest.approx(100 * math.exp(-0.5), abs=0.01)
    assert no2["e2"].max() == pytest.approx(100 * math.exp(-1.0), abs=0.01)
    assert not no2["e8"].any()  # beyond range: nothing at all


def test_wind_carries_the_plume_downwind_only(grid: Registry, tmp_path: Path) -> None:
    west_of_e0 = {"lat": 36.0, "lon": 117.99}
    wind = {"speed_m_s": 2.0, "from_deg": 270, "spread_deg": 20}  # a westerly: blows east
    raw = plume(source=west_of_e0, wind=wind, decay_km=3.0)
    del raw["spread"]
    (e,) = scenario(grid, tmp_path, episodes=[raw]).episodes
    assert {"e0", "e1", "e2"} <= e.nodes
    assert "n2" not in e.nodes  # 2 km north of e0: crosswind, far outside the cone
    near, far = e.reach_of("e1"), e.reach_of("e2")
    assert far.delay_min - near.delay_min == pytest.approx(1000 / 2.0 / 60, rel=5e-3)
    raw["wind"] = {**wind, "from_deg": 90}  # an easterly: every node is upwind
    with pytest.raises(ScenarioError, match="reaches no node"):
        scenario(grid, tmp_path, episodes=[raw])


def test_targets_limit_the_candidates(grid: Registry, tmp_path: Path) -> None:
    (e,) = scenario(grid, tmp_path, episodes=[plume(nodes=["e1", "e8"])]).episodes
    assert e.nodes == {"e1"}


def test_the_demo_episode_keeps_its_shape_and_labels(county: Registry) -> None:
    sc = load_scenario(EXAMPLES / "scenarios" / "demo.yaml", county)
    (e,) = sc.episodes
    assert (e.start_min, e.duration_min, e.ramp_min, e.source) == (20, 80, 5, None)
    assert len(e.nodes) == 8
    node = sorted(e.nodes)[0]
    assert e.excess("NO2", 20 + 2.5, node) == pytest.approx(210)
    assert e.excess("NO2", 60, node) == 420
    assert e.excess("NO2", 101, node) == 0
    labels = sc.ground_truth()
    assert {(x["node"], x["quantity"]) for x in labels} == {
        (n, q) for n in e.nodes for q in ("NO2", "SO2")
    }
    assert all((x["start_min"], x["end_min"], x["kind"]) == (20, 100, "plume") for x in labels)
    assert {x["add"] for x in labels} == {420, 1200}


def test_a_negative_increment_is_clipped_at_zero(grid: Registry, tmp_path: Path) -> None:
    episode = {"id": "anoxia", "kind": "discharge", "nodes": ["w1"], "start_min": 0,
               "duration_min": 60, "add": {"DO": -100}}  # fmt: skip
    sc = scenario(grid, tmp_path, episodes=[episode])
    driver = SimulatedDriver(grid.nodes["w1"], sc, sc.start_time(0.0))
    values = series(driver, [sc.start_time(0.0) + 60 * k for k in range(1, 59)], "DO")
    assert values == [0.0] * 58


def test_vectorised_track_matches_the_reference(grid: Registry) -> None:
    rng = np.random.default_rng(3)
    episodes = [
        Episode(f"e{i}", frozenset({"e1"}), float(rng.uniform(0, 300)),
                float(rng.uniform(1, 200)), float(rng.uniform(0, 50)),
                {"NO2": float(rng.normal(0, 100)), "CO": float(rng.uniform(0, 5))})
        for i in range(6)
    ]  # fmt: skip
    track = EpisodeTrack(episodes, "e1", AIR)
    for minute in rng.uniform(-10, 600, size=500):
        got = track.at(minute * 60)
        expected = [sum(e.excess(q, minute, "e1") for e in episodes) for q in AIR]
        assert np.allclose(got if got is not None else np.zeros(len(AIR)), expected, atol=1e-9)
