"""Routing: an exceedance event becomes an incident for the officer of the node's village."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from detect import ANOMALY_RULE_NAMES, ExceedanceEvent
from grid._store import Incident, IncidentDraft, IncidentStore
from tianwang.registry import Officer, Registry


@dataclass(frozen=True, slots=True)
class RoutedIncident:
    """What an officer is told: the incident, where it is and who is accountable."""

    incident: Incident
    place: str
    lat: float
    lon: float
    officer: Officer
    created: bool


Notifier = Callable[[RoutedIncident], None]

# Anomaly rules that mean a sensor needs a visit. Spikes, level shifts and fast changes are
# also what real pollution does: they stay evidence in the event stream, not work.
SENSOR_RULES = frozenset({"stuck", "implausible", "drift"})


class IncidentRouter:
    """Opens or extends one incident per (node, quantity, rule) and notifies its officer
    when it is created. Store calls run in a worker thread so the event loop stays free."""

    def __init__(self, registry: Registry, store: IncidentStore, notify: Notifier) -> None:
        self.registry = registry
        self.store = store
        self.notify = notify

    def _route(self, event: ExceedanceEvent) -> RoutedIncident | None:
        if event.rule in ANOMALY_RULE_NAMES and event.rule not in SENSOR_RULES:
            return None
        node = self.registry.nodes[event.node]
        village = self.registry.village_of(node)
        if event.kind == "open":
            incident, created = self.store.open_or_extend(
                IncidentDraft(
                    node=node.id,
                    quantity=event.quantity,
                    rule=event.rule,
                    county=node.place.county,
                    township=node.place.township,
                    village=node.place.village,
                    officer_id=village.officer.id,
                    started_at=datetime.fromtimestamp(event.episode_start_s, UTC),
                    value=event.value,
                    limit_value=event.limit if math.isfinite(event.limit) else None,
                    unit=event.unit,
                    standard=event.standard,
                    edition=event.edition,
                    clause=event.clause,
                )
            )
        elif event.kind == "update":
            found = self.store.extend(node.id, event.quantity, event.rule, event.value)
            if found is None:
                return None
            incident, created = found, False
        else:
            return None  # the episode ended; the incident stays open until an officer acts
        return RoutedIncident(
            incident, self.registry.place_name(node), node.lat, node.lon, village.officer, created
        )

    def handle(self, events: list[ExceedanceEvent]) -> list[RoutedIncident]:
        routed = [r for r in (self._route(e) for e in events) if r is not None]
        for r in routed:
            if r.created:
                self.notify(r)
        return routed

    async def handle_async(self, events: list[ExceedanceEvent]) -> None:
        await asyncio.to_thread(self.handle, events)
