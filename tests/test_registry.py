"""The node registry: the example county loads; a bad grid file names the offending field."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tianwang.registry import Registry, RegistryError, load_registry, parse_registry
from tianwang.topics import NodeTopic

COUNTY_YAML = Path(__file__).resolve().parent.parent / "examples" / "county.yaml"


def _node(node_id: str, **changes: Any) -> dict[str, Any]:
    node: dict[str, Any] = {"id": node_id, "lat": 36.1, "lon": 118.1, "quantities": ["NO2"]}
    node.update(changes)
    return node


def _village(village_id: str, *nodes: dict[str, Any], **changes: Any) -> dict[str, Any]:
    village: dict[str, Any] = {
        "id": village_id,
        "name": f"{village_id} village",
        "officer": {"id": f"off-{village_id}", "name": "Wang", "phone": "+86 1"},
        "nodes": list(nodes),
    }
    village.update(changes)
    return village


def _grid(*townships: dict[str, Any]) -> dict[str, Any]:
    return {"county": {"id": "c1", "name": "County"}, "townships": list(townships)}


def _township(township_id: str, *villages: dict[str, Any]) -> dict[str, Any]:
    return {"id": township_id, "name": f"{township_id} town", "villages": list(villages)}


def _error(raw: dict[str, Any]) -> str:
    with pytest.raises(RegistryError) as info:
        parse_registry(raw)
    return str(info.value)


@pytest.fixture(scope="module")
def county() -> Registry:
    return load_registry(COUNTY_YAML)


def test_example_county_counts(county: Registry) -> None:
    assert county.county == "yiyuan"
    assert county.timezone == "Asia/Shanghai"
    assert len(county.township_names) == 4
    assert len(county.villages) == 16
    assert len(county.nodes) == 68  # 64 air, 2 water, 2 noise
    assert Counter(v.township for v in county.villages.values()) == dict.fromkeys(
        county.township_names, 4
    )


def test_example_county_every_village_has_an_officer(county: Registry) -> None:
    for village in county.villages.values():
        assert village.officer.id
        assert village.officer.name
    assert len({v.officer.id for v in county.villages.values()}) == 16


def test_example_county_nodes_sit_in_known_villages(county: Registry) -> None:
    for node_id, node in county.nodes.items():
        assert node.id == node_id == node.place.node
        assert node.place.county == "yiyuan"
        assert county.village_of(node).id == node.place.village
        assert node.zone_class in (1, 2)
        assert node.quantities


def test_village_of_and_place_name(county: Registry) -> None:
    node = county.nodes["yy-0001"]
    assert node.place == NodeTopic("yiyuan", "nanma", "dongli", "yy-0001")
    village = county.village_of(node)
    assert (village.id, village.name, village.township) == ("dongli", "东里村", "nanma")
    assert village.officer.name == "王建国"
    assert county.place_name(node) == "沂源县 南麻街道 东里村"


def test_parse_minimal_grid_with_defaults() -> None:
    registry = parse_registry(_grid(_township("t1", _village("v1", _node("n1")))))
    node = registry.nodes["n1"]
    assert (node.zone_class, node.sampling_s, node.quantities) == (2, 60.0, ("NO2",))
    assert node.place == NodeTopic("c1", "t1", "v1", "n1")
    assert registry.timezone == "Asia/Shanghai"
    assert registry.place_name(node) == "County t1 town v1 village"


def test_same_village_id_in_two_townships_is_allowed() -> None:
    registry = parse_registry(
        _grid(
            _township("t1", _village("v1", _node("n1"))),
            _township("t2", _village("v1", _node("n2"))),
        )
    )
    assert registry.village_of(registry.nodes["n2"]).township == "t2"
    assert len(registry.villages) == 2


def test_duplicate_node_id_across_villages() -> None:
    raw = _grid(_township("t1", _village("v1", _node("n1")), _village("v2", _node("n1"))))
    message = _error(raw)
    assert "townships[0].villages[1].nodes[0].id" in message
    assert "duplicate node 'n1'" in message


def test_duplicate_village() -> None:
    raw = _grid(_township("t1", _village("v1"), _village("v1")))
    message = _error(raw)
    assert "townships[0].villages[1].id" in message
    assert "duplicate village 'v1'" in message


def test_duplicate_township() -> None:
    message = _error(_grid(_township("t1"), _township("t1")))
    assert "townships[1].id" in message
    assert "duplicate township 't1'" in message


def test_unknown_quantity() -> None:
    raw = _grid(_township("t1", _village("v1", _node("n1", quantities=["NO2", "NOx"]))))
    message = _error(raw)
    assert "townships[0].villages[0].nodes[0].quantities" in message
    assert "'NOx'" in message


@pytest.mark.parametrize("officer", [None, ""])
def test_missing_officer(officer: Any) -> None:
    raw = _grid(_township("t1", _village("v1", officer=officer)))
    assert _error(raw) == "townships[0].villages[0].officer: missing"


def test_officer_without_name() -> None:
    raw = _grid(_township("t1", _village("v1", officer={"id": "o1"})))
    assert _error(raw) == "townships[0].villages[0].officer.name: missing"


@pytest.mark.parametrize("zone_class", [0, 3, -1])
def test_bad_zone_class(zone_class: int) -> None:
    raw = _grid(_township("t1", _village("v1", _node("n1", zone_class=zone_class))))
    message = _error(raw)
    assert "townships[0].villages[0].nodes[0].zone_class" in message
    assert str(zone_class) in message


@pytest.mark.parametrize(
    ("field", "value"),
    [("zone_class", "high"), ("zone_class", 1.5), ("sampling_s", "fast"), ("lat", "north")],
)
def test_malformed_number_is_a_registry_error(field: str, value: Any) -> None:
    # RegistryError promises a message that names the field; int("high") / float("north")
    # raise a bare ValueError that names nothing and escapes `except RegistryError` in the
    # CLI, and int(1.5) silently makes the node grade I.
    raw = _grid(_township("t1", _village("v1", _node("n1", **{field: value}))))
    assert f"townships[0].villages[0].nodes[0].{field}" in _error(raw)


@pytest.mark.parametrize("sampling_s", [0, -5, 3601])
def test_bad_sampling_period(sampling_s: float) -> None:
    raw = _grid(_township("t1", _village("v1", _node("n1", sampling_s=sampling_s))))
    assert "townships[0].villages[0].nodes[0].sampling_s" in _error(raw)


@pytest.mark.parametrize("field", ["id", "lat", "lon", "quantities"])
def test_node_missing_field(field: str) -> None:
    node = _node("n1")
    del node[field]
    raw = _grid(_township("t1", _village("v1", node)))
    assert _error(raw) == f"townships[0].villages[0].nodes[0].{field}: missing"


def test_missing_county() -> None:
    assert _error({"townships": []}) == "grid.county: missing"


def test_load_registry_reports_the_file(tmp_path: Path) -> None:
    path = tmp_path / "grid.yaml"
    path.write_text("county: [unclosed\n", "utf-8")
    with pytest.raises(RegistryError, match=r"grid\.yaml"):
        load_registry(path)
    with pytest.raises(RegistryError, match=r"missing\.yaml"):
        load_registry(tmp_path / "missing.yaml")
