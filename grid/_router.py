"""Routing: an exceedance event becomes an incident for the officer on duty in the node's
village, with its severity and acknowledgement deadline (escalation: grid/_escalation.py)."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from detect import ANOMALY_RULE_NAMES, ExceedanceEvent
from grid._store import Extension, Incident, IncidentDraft, IncidentStore, Op
from tianwang.escalation import severity
from tianwang.registry import Node, Officer, Registry

Clock = Callable[[], datetime]


def wall_clock() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class RoutedIncident:
    """What an officer is told: the incident, where it is and who is accountable."""

    incident: Incident
    place: str
    lat: float
    lon: float
    officer: Officer
    created: bool


Announce = Callable[[RoutedIncident], None]  # the process's own echo or log of new incidents

# Anomaly rules that mean a sensor needs a visit. Spikes, level shifts and fast changes are
# also what real pollution does: they stay evidence in the event stream, not work. Drift
# too, for now: in the county_day scenario its episodes were pollution reaching some nodes
# of a township and not others (11 false, 0 true in 24 h; docs/detector.md).
SENSOR_RULES = frozenset({"stuck", "implausible"})


class IncidentRouter:
    """Opens or extends one incident per (node, quantity, rule) and announces it when it is
    created (or reopened within the cool-down). A list of events is recorded in one store
    transaction. Store calls run in a worker thread so the event loop stays free.

    The officer is the one on duty when the event is routed (``clock``), not at the event's
    hour: an hourly event arrives after its hour, and at a shift change the officer going
    off duty should not get it. Officers are told by the escalation service's notices
    (grid/_escalation.py), which read the store; ``notify`` is the process's own echo."""

    def __init__(
        self,
        registry: Registry,
        store: IncidentStore,
        notify: Announce,
        *,
        clock: Clock = wall_clock,
    ) -> None:
        self.registry = registry
        self.store = store
        self.notify = notify
        self.clock = clock

    def _op(self, event: ExceedanceEvent, now: datetime) -> Op | None:
        if event.rule in ANOMALY_RULE_NAMES and event.rule not in SENSOR_RULES:
            return None
        if event.kind == "update":
            return Extension(event.node, event.quantity, event.rule, event.value)
        if event.kind != "open":
            return None  # the episode ended; the incident stays active until an officer acts
        node = self.registry.nodes[event.node]
        limit = event.limit if math.isfinite(event.limit) else None
        level = severity(event.rule, event.quantity, event.value, limit)
        return IncidentDraft(
            node=node.id,
            quantity=event.quantity,
            rule=event.rule,
            county=node.place.county,
            township=node.place.township,
            village=node.place.village,
            officer_id=self.registry.on_duty(self.registry.village_of(node), now).id,
            started_at=datetime.fromtimestamp(event.episode_start_s, UTC),
            value=event.value,
            limit_value=limit,
            unit=event.unit,
            standard=event.standard,
            edition=event.edition,
            clause=event.clause,
            severity=level,
            ack_due_at=self._ack_due(node, level, now),
            township_officer_id=self._township_officer(node, now),
        )

    def _ack_due(self, node: Node, level: str, now: datetime) -> datetime | None:
        """When the village officer's time to acknowledge runs out; None when the policy
        leaves no level above the village to escalate to."""
        if len(self.registry.escalation_path(node, level)) < 2:
            return None
        return now + timedelta(minutes=self.registry.escalation[level].ack_within_min)

    def _township_officer(self, node: Node, now: datetime) -> str | None:
        """The 网格长 on duty, for a township parent; None if the township has none."""
        try:
            return self.registry.on_duty((node.place.township,), now).id
        except LookupError:
            return None

    def _routed(self, node_id: str, incident: Incident, created: bool) -> RoutedIncident:
        node = self.registry.nodes[node_id]
        # a reopened incident keeps the officer (and level) it had
        officer = (
            self.registry.officers.get(incident.officer_id)
            or self.registry.village_of(node).officer
        )
        place = self.registry.place_name(node)
        return RoutedIncident(incident, place, node.lat, node.lon, officer, created)

    def handle(self, events: list[ExceedanceEvent]) -> list[RoutedIncident]:
        now = self.clock()
        ops = [op for op in (self._op(e, now) for e in events) if op is not None]
        results = self.store.record(ops, now) if ops else []
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
