"""End to end on real Mosquitto and InfluxDB: the demo county with its pollution episode."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import EXAMPLES
from tianwang.demo import DemoResult, run_pipeline
from tianwang.registry import Registry
from tianwang.services import InfluxDB, Mosquitto

SPEED = 1200.0  # two simulated hours in about six seconds


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> DemoResult:
    """One run for the module's assertions, on a broker and a database of its own."""
    root = tmp_path_factory.mktemp("e2e")
    with Mosquitto(root / "mosquitto") as broker, InfluxDB(root / "influxdb") as influx:
        return asyncio.run(
            run_pipeline(
                EXAMPLES / "county.yaml",
                EXAMPLES / "scenarios" / "demo.yaml",
                root,
                broker.url,
                influx.url,
                speed=SPEED,
                echo=lambda line: None,
            )
        )


def test_every_published_reading_is_stored_once_per_node(
    demo_run: DemoResult, county: Registry
) -> None:
    published = demo_run.fleet.readings_published
    assert set(published) == set(county.nodes)
    # 2 simulated hours at 60 s sampling, every quantity of every node.
    assert published == {n: 120 * len(node.quantities) for n, node in county.nodes.items()}
    assert demo_run.stored_by_node == published
    assert demo_run.rejections == {}
    assert demo_run.ingest_counts.get("duplicate", 0) == 0


def test_episode_yields_one_incident_per_affected_node_and_pollutant(
    demo_run: DemoResult, county: Registry
) -> None:
    truth = {(label["node"], label["quantity"]) for label in demo_run.ground_truth}
    assert len(truth) == 8 * 2  # two villages of four nodes, NO2 and SO2
    routed = [(r.incident.node, r.incident.quantity) for r in demo_run.routed]
    assert sorted(routed) == sorted(truth)  # exactly one each, and none elsewhere


def test_incidents_go_to_the_officer_of_the_nodes_village(
    demo_run: DemoResult, county: Registry
) -> None:
    assert demo_run.routed
    for r in demo_run.routed:
        node = county.nodes[r.incident.node]
        village = county.village_of(node)
        assert r.officer == village.officer
        assert r.incident.officer_id == village.officer.id
        assert r.incident.value > r.incident.limit_value
        assert r.incident.edition.startswith("GB 3095")
