"""Routing: an exceedance event becomes an incident for the officer of the node's village."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from detect import ANOMALY_RULE_NAMES, ExceedanceEvent
from grid._store import Extension, Incident, IncidentDraft, IncidentStore, Op
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
    when it is created (or reopened within the cool-down). A list of events is recorded in
    one store transaction. Store calls run in a worker thread so the event loop stays free."""

    def __init__(self, registry: Registry, store: IncidentStore, notify: Notifier) -> None:
        self.registry = registry
        self.store = store
        self.notify = notify

    def _op(self, event: ExceedanceEvent) -> Op | None:
        if event.rule in ANOMALY_RULE_NAMES and event.rule not in SENSOR_RULES:
            return None
        if event.kind == "update":
            return Extension(event.node, event.quantity, event.rule, event.value)
        if event.kind != "open":
            return None  # the episode ended; the incident stays active until an officer acts
        node = self.registry.nodes[event.node]
        return IncidentDraft(
            node=node.id,
            quantity=event.quantity,
            rule=event.rule,
            county=node.place.county,
            township=node.place.township,
            village=node.place.village,
            officer_id=self.registry.village_of(node).officer.id,
            started_at=datetime.fromtimestamp(event.episode_start_s, UTC),
            value=event.value,
            limit_value=event.limit if math.isfinite(event.limit) else None,
            unit=event.unit,
            standard=event.standard,
            edition=event.edition,
            clause=event.clause,
        )

    def _routed(self, node_id: str, incident: Incident, created: bool) -> RoutedIncident:
        node = self.registry.nodes[node_id]
        officer = self.registry.village_of(node).officer
        place = self.registry.place_name(node)
        return RoutedIncident(incident, place, node.lat, node.lon, officer, created)

    def handle(self, events: list[ExceedanceEvent]) -> list[RoutedIncident]:
        ops = [op for op in map(self._op, events) if op is not None]
        results = self.store.record(ops) if ops else []
        routed = [
            self._routed(op.node, *result)
            for op, result in zip(ops, results, strict=True)
            if result is not None
        ]
        for r in routed:
            if r.created:
                self.notify(r)
        return routed

    async def handle_async(self, events: list[ExceedanceEvent]) -> None:
        await asyncio.to_thread(self.handle, events)
