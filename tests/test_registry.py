"""The node registry: the example county loads; a bad grid file names the offending field."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

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
    # neither a legacy inline officer nor grid_officer ids: nobody is on duty in the village
    raw = _grid(_township("t1", _village("v1", officer=officer)))
    message = _error(raw)
    assert message.startswith("townships[0].villages[0].officer: missing")
    assert "grid_officer" in message


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


# --- water_class, noise_zone, permits and limit_class -------------------------------------

NODE = "townships[0].villages[0].nodes[0]"


def _one_node(node: dict[str, Any], permits: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    raw = _grid(_township("t1", _village("v1", node)))
    if permits is not None:
        raw["permits"] = permits
    return raw


def _permit(permit_id: str = "zb-001", **changes: Any) -> dict[str, Any]:
    permit: dict[str, Any] = {
        "id": permit_id,
        "holder": "Yiyuan Paper Co.",
        "clause": "排污许可证 91370323 §3",
        "limits": [
            {"quantity": "COD", "period": "1h", "max": 50},
            {"quantity": "pH", "min": 6, "max": 9},
            {"quantity": "DO", "period": "24h", "min": 4.0},
        ],
    }
    permit.update(changes)
    return permit


WATER = ["COD", "NH3-N", "DO", "pH"]


def test_example_county_water_and_noise_nodes_have_explicit_classes() -> None:
    raw = yaml.safe_load(COUNTY_YAML.read_text("utf-8"))
    nodes = {
        n["id"]: n for t in raw["townships"] for v in t["villages"] for n in v.get("nodes", [])
    }
    for node_id in ("yy-w01", "yy-w02"):
        assert nodes[node_id]["water_class"] in ("I", "II", "III", "IV", "V")
    for node_id in ("yy-n01", "yy-n02"):
        assert str(nodes[node_id]["noise_zone"]) in ("0", "1", "2", "3", "4a", "4b")


def test_example_county_limit_classes(county: Registry) -> None:
    assert county.limit_class(county.nodes["yy-w01"], "DO") == "water:IV"
    assert county.limit_class(county.nodes["yy-w02"], "NH3-N") == "water:IV"
    assert county.limit_class(county.nodes["yy-n01"], "LAeq") == "noise:2"
    assert county.limit_class(county.nodes["yy-0001"], "NO2") == "air:2"
    assert county.permits == {}


def test_water_noise_permit_defaults() -> None:
    registry = parse_registry(_one_node(_node("n1", quantities=WATER)))
    node = registry.nodes["n1"]
    assert (node.water_class, node.noise_zone, node.permit) == ("III", "2", None)
    assert registry.permits == {}


@pytest.mark.parametrize("water_class", ["I", "II", "III", "IV", "V"])
def test_water_class_is_parsed(water_class: str) -> None:
    registry = parse_registry(_one_node(_node("n1", quantities=WATER, water_class=water_class)))
    assert registry.nodes["n1"].water_class == water_class


@pytest.mark.parametrize(("zone", "parsed"), [("0", "0"), (1, "1"), (3, "3"), ("4a", "4a"),
                                              ("4b", "4b")])  # fmt: skip
def test_noise_zone_is_parsed(zone: Any, parsed: str) -> None:
    # YAML reads `noise_zone: 1` as an int: it means zone "1"
    registry = parse_registry(_one_node(_node("n1", quantities=["LAeq"], noise_zone=zone)))
    assert registry.nodes["n1"].noise_zone == parsed


@pytest.mark.parametrize("water_class", ["VI", "iii", "3", 3, "劣V"])
def test_bad_water_class(water_class: Any) -> None:
    message = _error(_one_node(_node("n1", quantities=WATER, water_class=water_class)))
    assert message.startswith(f"{NODE}.water_class: must be one of I, II, III, IV, V")
    assert repr(str(water_class)) in message


@pytest.mark.parametrize("zone", ["4", "4A", 5, "c"])
def test_bad_noise_zone(zone: Any) -> None:
    message = _error(_one_node(_node("n1", quantities=["LAeq"], noise_zone=zone)))
    assert message.startswith(f"{NODE}.noise_zone: must be one of 0, 1, 2, 3, 4a, 4b")
    assert repr(str(zone)) in message


def test_permits_are_parsed() -> None:
    registry = parse_registry(
        _one_node(_node("n1", quantities=WATER, permit="zb-001"), [_permit(), _permit("zb-002")])
    )
    assert registry.nodes["n1"].permit == "zb-001"
    assert set(registry.permits) == {"zb-001", "zb-002"}
    permit = registry.permits["zb-001"]
    assert (permit.id, permit.holder, permit.clause) == (
        "zb-001", "Yiyuan Paper Co.", "排污许可证 91370323 §3"
    )  # fmt: skip
    assert dict(permit.limits) == {
        ("COD", "1h"): (-math.inf, 50.0),
        ("pH", "1h"): (6.0, 9.0),  # period defaults to 1h
        ("DO", "24h"): (4.0, math.inf),
    }


def test_unknown_permit_on_a_node() -> None:
    message = _error(_one_node(_node("n1", quantities=WATER, permit="zb-404"), [_permit()]))
    assert message == f"{NODE}.permit: unknown permit 'zb-404'"


def test_permit_limit_without_max_or_min() -> None:
    permit = _permit(limits=[{"quantity": "COD", "period": "1h"}])
    assert _error(_one_node(_node("n1"), [permit])) == "permits[0].limits[0]: needs max or min"


def test_permit_limit_with_unknown_quantity() -> None:
    permit = _permit(limits=[{"quantity": "COD", "max": 50}, {"quantity": "CODcr", "max": 50}])
    message = _error(_one_node(_node("n1"), [permit]))
    assert message == "permits[0].limits[1].quantity: unknown quantity 'CODcr'"


def test_duplicate_permit_id() -> None:
    message = _error(_one_node(_node("n1"), [_permit(), _permit("zb-002"), _permit()]))
    assert message == "permits[2].id: duplicate permit 'zb-001'"


@pytest.mark.parametrize("period", ["8h", "1d", 1, "24H"])
def test_bad_permit_period(period: Any) -> None:
    permit = _permit(limits=[{"quantity": "COD", "period": period, "max": 50}])
    message = _error(_one_node(_node("n1"), [permit]))
    assert message.startswith("permits[0].limits[0].period: must be one of 1h, 24h")


def test_duplicate_permit_limit() -> None:
    permit = _permit(limits=[{"quantity": "COD", "max": 50}, {"quantity": "COD", "max": 60}])
    message = _error(_one_node(_node("n1"), [permit]))
    assert message == "permits[0].limits[1]: duplicate limit for COD 1h"


@pytest.mark.parametrize("field", ["max", "min"])
def test_permit_bound_must_be_a_number(field: str) -> None:
    permit = _permit(limits=[{"quantity": "COD", field: "fifty"}])
    message = _error(_one_node(_node("n1"), [permit]))
    assert f"permits[0].limits[0].{field}: must be a number" in message


@pytest.mark.parametrize("field", ["id", "clause", "limits"])
def test_permit_missing_field(field: str) -> None:
    permit = _permit()
    del permit[field]
    assert _error(_one_node(_node("n1"), [permit])) == f"permits[0].{field}: missing"


def test_permit_limit_min_above_max_is_refused() -> None:
    permit = _permit(limits=[{"quantity": "pH", "min": 9, "max": 6}])
    assert "permits[0].limits[0]: min 9 is above max 6" in _error(_one_node(_node("n1"), [permit]))


def test_limit_class_per_medium_and_permit() -> None:
    registry = parse_registry(
        _grid(
            _township(
                "t1",
                _village(
                    "v1",
                    _node("air1", quantities=["NO2", "O3"], zone_class=1),
                    _node("air2", quantities=["NO2"]),
                    _node("w1", quantities=WATER, water_class="II"),
                    _node("n1", quantities=["LAeq"], noise_zone="4a"),
                    _node("src", quantities=WATER, water_class="IV", permit="zb-001"),
                ),
            )
        )
        | {"permits": [_permit()]}
    )
    nodes = registry.nodes
    assert registry.limit_class(nodes["air1"], "O3") == "air:1"
    assert registry.limit_class(nodes["air2"], "NO2") == "air:2"
    assert registry.limit_class(nodes["w1"], "DO") == "water:II"
    assert registry.limit_class(nodes["n1"], "LAeq") == "noise:4a"
    # the permit covers COD, pH and DO (any period): it wins over GB 3838 class IV
    for quantity in ("COD", "pH", "DO"):
        assert registry.limit_class(nodes["src"], quantity) == "permit:zb-001"
    # not covered by the permit: the ambient standard of the node's class
    assert registry.limit_class(nodes["src"], "NH3-N") == "water:IV"
