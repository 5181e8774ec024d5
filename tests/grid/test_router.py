"""The router on the demo county: detector events become incidents for the village officer,
a list of events in one transaction, township episodes grouped under a parent."""

from __future__ import annotations

from pathlib import Path

from detect import ExceedanceEvent
from grid import IncidentRouter, IncidentStore, RoutedIncident
from tianwang.registry import Registry

T0_S = 1_772_352_000


def _event(kind: str, node: str, value: float = 90.0, rule: str = "1h_mean") -> ExceedanceEvent:
    return ExceedanceEvent(
        kind=kind,  # type: ignore[arg-type]
        node=node,
        quantity="PM2.5",
        rule=rule,
        hour_start_s=T0_S,
        value=value,
        limit=75.0,
        unit="ug/m3",
        standard="GB 3095",
        edition="GB 3095-2012",
        clause="table 1",
        episode_start_s=T0_S,
        peak=value,
    )


def test_open_update_close_make_one_incident_and_one_notice(
    county: Registry, tmp_path: Path
) -> None:
    told: list[RoutedIncident] = []
    store = IncidentStore(f"sqlite:///{tmp_path / 'incidents.sqlite'}")
    router = IncidentRouter(county, store, told.append)
    node = next(iter(county.nodes.values()))
    routed = router.handle(
        [
            _event("update", node.id),  # no incident yet: ignored
            _event("open", node.id, 90.0),
            _event("update", node.id, 120.0),
            _event("close", node.id),
            _event("open", node.id, 50.0, rule="spike"),  # evidence, not work
        ]
    )
    assert [r.created for r in routed] == [True, False]
    [incident] = store.all()
    assert (incident.events, incident.peak, incident.value) == (2, 120.0, 120.0)
    assert incident.officer_id == county.village_of(node).officer.id
    assert [r.incident.id for r in told] == [incident.id]
    assert told[0].officer == county.village_of(node).officer
    assert told[0].place == county.place_name(node)


def test_nodes_of_one_township_in_one_batch_get_a_parent(county: Registry, tmp_path: Path) -> None:
    store = IncidentStore(f"sqlite:///{tmp_path / 'incidents.sqlite'}")
    router = IncidentRouter(county, store, lambda r: None)
    township = next(iter(county.township_names))
    nodes = [n.id for n in county.nodes.values() if n.place.township == township][:3]
    routed = router.handle([_event("open", n) for n in nodes])
    parent_ids = {store.get(r.incident.id).parent_id for r in routed}
    assert len(parent_ids) == 1 and None not in parent_ids
    parent = store.get(parent_ids.pop())
    assert (parent.scope, parent.township, parent.events) == ("township", township, 3)
