"""Escalation with a stepped clock on a real store (SQLite and PostgreSQL): severity and
deadline from the router, village -> township -> county with a notice at each step, the
policy's ceiling, acknowledgement stopping the timer, hand-off at the change of duty, and a
restarted service carrying on without telling anyone twice."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from detect import ExceedanceEvent
from grid import (
    Escalator,
    Incident,
    IncidentError,
    IncidentRouter,
    IncidentStore,
    Notice,
    Notifier,
    Tick,
)
from tianwang.registry import Officer, Registry, parse_registry

# 10:00 in Asia/Shanghai: the day shift (08:00-20:00) of the village is on duty.
T0 = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
EVENING = datetime(2026, 3, 2, 11, 50, tzinfo=UTC)  # 19:50 local, ten minutes before 20:00


def _grid() -> Registry:
    node = {"lat": 36.1, "lon": 118.1, "quantities": ["PM2.5"]}
    return parse_registry(
        {
            "county": {"id": "c1", "name": "县", "county_officer": "cty"},
            "officers": [
                {"id": i, "name": i, "email": f"{i}@c1.test"}
                for i in ("v-day", "v-night", "chief", "cty")
            ],
            "townships": [
                {
                    "id": "t1",
                    "name": "镇",
                    "grid_chief": "chief",
                    "villages": [
                        {
                            "id": "v1",
                            "name": "村",
                            "grid_officer": ["v-day", "v-night"],
                            "nodes": [{"id": "n1", **node}, {"id": "n2", **node}],
                        }
                    ],
                }
            ],
            "rosters": [
                {
                    "cell": "c1/t1/v1",
                    "shifts": [
                        {"days": "daily", "from": "08:00", "to": "20:00", "officer": "v-day"},
                        {"days": "daily", "from": "20:00", "to": "08:00", "officer": "v-night"},
                    ],
                }
            ],
        }
    )


class Recorder:
    """A channel that keeps what it was given (the real channels: test_notify.py)."""

    name = "recorder"

    def __init__(self) -> None:
        self.notices: list[Notice] = []

    def applies(self, officer: Officer) -> bool:
        return True

    async def send(self, notice: Notice, attempts: Any) -> None:
        attempts.count += 1
        self.notices.append(notice)

    def told(self) -> list[tuple[str, str]]:
        return [(n.action, n.officer.id) for n in self.notices]


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _event(node: str, value: float, rule: str = "1h_mean") -> ExceedanceEvent:
    start = int(T0.timestamp()) - 3600
    return ExceedanceEvent(
        kind="open", node=node, quantity="PM2.5", rule=rule, hour_start_s=start, value=value,
        limit=75.0, unit="ug/m3", standard="GB 3095", edition="GB 3095-2012", clause="table 1",
        episode_start_s=start, peak=value,
    )  # fmt: skip


def _open(store: IncidentStore, at: datetime, value: float, node: str = "n1") -> Incident:
    router = IncidentRouter(_grid(), store, lambda r: None, clock=lambda: at)
    [routed] = router.handle([_event(node, value)])
    return routed.incident


def _escalator(store: IncidentStore, recorder: Recorder | None) -> Escalator:
    notifier = Notifier([recorder]) if recorder is not None else None
    return Escalator(_grid(), store, notifier)


def _tick(escalator: Escalator, at: datetime) -> Any:
    return asyncio.run(escalator.tick(at))


def test_router_sets_severity_deadline_and_the_officer_on_duty(store: IncidentStore) -> None:
    critical = _open(store, T0, 160.0)  # over twice the limit
    assert (critical.severity, critical.officer_id) == ("critical", "v-day")
    assert critical.ack_due_at == T0 + timedelta(minutes=15)
    night = _open(store, T0 + timedelta(hours=12), 80.0, node="n2")  # 22:00 local
    assert (night.severity, night.officer_id) == ("major", "v-night")
    assert night.ack_due_at == T0 + timedelta(hours=13)


def test_router_gives_a_township_parent_to_the_grid_chief(store: IncidentStore) -> None:
    router = IncidentRouter(_grid(), store, lambda r: None, clock=lambda: T0)
    router.handle([_event("n1", 80.0), _event("n2", 80.0)])
    [parent] = [i for i in store.active() if i.scope == "township"]
    assert (parent.officer_id, parent.assigned_level, parent.severity) == (
        "chief",
        "township",
        "major",
    )
    assert parent.ack_due_at == T0 + timedelta(hours=1)


def test_unacknowledged_incident_climbs_to_the_county(store: IncidentStore) -> None:
    recorder = Recorder()
    incident = _open(store, T0, 160.0)
    escalator = _escalator(store, recorder)
    first = _tick(escalator, T0)
    assert first.escalated == [] and recorder.told() == [("created", "v-day")]
    assert _tick(escalator, T0 + timedelta(minutes=14)).escalated == []
    assert _tick(escalator, T0 + timedelta(minutes=15)).escalated == [incident.id]
    up = store.get(incident.id)
    assert (up.assigned_level, up.officer_id) == ("township", "chief")
    assert up.ack_due_at == T0 + timedelta(minutes=30)
    _tick(escalator, T0 + timedelta(minutes=31))
    top = store.get(incident.id)
    assert (top.assigned_level, top.officer_id, top.ack_due_at) == ("county", "cty", None)
    assert _tick(escalator, T0 + timedelta(hours=5)).escalated == []
    assert recorder.told() == [
        ("created", "v-day"),
        ("escalated", "chief"),
        ("escalated", "cty"),
    ]
    notified = [a.detail or {} for a in store.audit(incident.id) if a.action == "notified"]
    assert [d["officer"] for d in notified] == ["v-day", "chief", "cty"]
    assert notified[0]["deliveries"] == [
        {"channel": "recorder", "status": "sent", "attempts": 1, "error": ""}
    ]


def test_acknowledgement_stops_the_climb(store: IncidentStore) -> None:
    recorder = Recorder()
    incident = _open(store, T0, 160.0)
    escalator = _escalator(store, recorder)
    store.transition(incident.id, "acknowledged", "v-day", "on my way", now=T0)
    assert _tick(escalator, T0 + timedelta(hours=1)).escalated == []
    assert store.get(incident.id).assigned_level == "village"
    assert recorder.told() == []  # acknowledged before its notice went out: nothing to say
    with pytest.raises(IncidentError, match="no longer due"):
        store.escalate(incident.id, "township", "chief", T0 + timedelta(hours=1),
                       only_if_due=True)  # fmt: skip


def test_minor_climbs_only_to_the_township(store: IncidentStore) -> None:
    recorder = Recorder()
    router = IncidentRouter(_grid(), store, lambda r: None, clock=lambda: T0)
    [routed] = router.handle([_event("n1", 80.0, rule="24h_mean_projected")])
    incident = routed.incident
    assert (incident.severity, incident.ack_due_at) == ("minor", T0 + timedelta(hours=4))
    escalator = _escalator(store, recorder)
    assert _tick(escalator, T0 + timedelta(hours=4)).escalated == [incident.id]
    up = store.get(incident.id)
    assert (up.assigned_level, up.officer_id, up.ack_due_at) == ("township", "chief", None)
    assert _tick(escalator, T0 + timedelta(hours=10)) == Tick()
    assert recorder.told() == [("escalated", "chief")]


def test_a_township_parent_with_no_level_left_stops_its_timer(store: IncidentStore) -> None:
    recorder = Recorder()
    router = IncidentRouter(_grid(), store, lambda r: None, clock=lambda: T0)
    rule = "24h_mean_projected"  # minor: up to the township, where the parent already is
    router.handle([_event("n1", 80.0, rule=rule), _event("n2", 80.0, rule=rule)])
    [parent] = [i for i in store.active() if i.scope == "township"]
    escalator = _escalator(store, recorder)
    _tick(escalator, T0)
    done = _tick(escalator, T0 + timedelta(hours=4))
    assert done.stopped == [parent.id] and len(done.escalated) == 2
    stopped = store.get(parent.id)
    assert (stopped.ack_due_at, stopped.officer_id, stopped.status) == (None, "chief", "open")
    assert [a.action for a in store.audit(parent.id)][-1] == "timer_stopped"
    assert sorted(recorder.told()) == [
        ("created", "chief"),
        ("created", "v-day"),
        ("created", "v-day"),
        ("escalated", "chief"),
        ("escalated", "chief"),
    ]


def test_a_restarted_service_carries_on_and_tells_no_one_twice(store_url: str) -> None:
    recorder = Recorder()
    store = IncidentStore(store_url)
    incident = _open(store, T0, 160.0)
    _tick(_escalator(store, recorder), T0 + timedelta(minutes=15))
    assert recorder.told() == [("escalated", "chief")]  # the created notice was superseded
    store.close()

    store = IncidentStore(store_url)  # a new process: nothing in memory survives
    escalator = _escalator(store, recorder)
    assert _tick(escalator, T0 + timedelta(minutes=16)).notified == []
    _tick(escalator, T0 + timedelta(minutes=30))
    assert store.get(incident.id).officer_id == "cty"
    assert recorder.told() == [("escalated", "chief"), ("escalated", "cty")]
    store.close()


def test_a_change_made_before_a_crash_is_notified_after_the_restart(store_url: str) -> None:
    """The escalation is committed but the process dies before telling anyone: the notice
    is the audit row, so the next service sends it."""
    store = IncidentStore(store_url)
    incident = _open(store, T0, 160.0)
    _tick(_escalator(store, None), T0 + timedelta(minutes=15))  # changed, nothing sent
    store.close()
    recorder = Recorder()
    store = IncidentStore(store_url)
    _tick(_escalator(store, recorder), T0 + timedelta(minutes=16))
    assert recorder.told() == [("escalated", "chief")]
    assert recorder.notices[0].incident.id == incident.id
    store.close()


def test_hand_off_at_the_change_of_duty(store: IncidentStore) -> None:
    recorder = Recorder()
    incident = _open(store, EVENING, 80.0)  # major: 60 min
    assert incident.officer_id == "v-day"
    escalator = _escalator(store, recorder)
    _tick(escalator, EVENING)
    assert _tick(escalator, EVENING + timedelta(minutes=9)).handed_off == []
    after = EVENING + timedelta(minutes=11)  # 20:01 local
    assert _tick(escalator, after).handed_off == [incident.id]
    moved = store.get(incident.id)
    assert (moved.officer_id, moved.assigned_level) == ("v-night", "village")
    assert moved.ack_due_at == after + timedelta(minutes=60)  # the new officer's full time
    [entry] = [a for a in store.audit(incident.id) if a.action == "handed_off"]
    assert entry.detail == {"from_officer": "v-day", "to_officer": "v-night", "level": "village"}
    assert recorder.told() == [("created", "v-day"), ("handed_off", "v-night")]
    assert _tick(escalator, EVENING + timedelta(minutes=65)).escalated == []


def test_a_manual_reassignment_stands_until_the_next_change_of_duty(
    store: IncidentStore,
) -> None:
    recorder = Recorder()
    incident = _open(store, EVENING + timedelta(minutes=20), 80.0)  # 20:10: v-night
    store.reassign(incident.id, "v-day", "chief", "v-night is at another site",
                   EVENING + timedelta(minutes=25))  # fmt: skip
    escalator = _escalator(store, recorder)
    assert _tick(escalator, EVENING + timedelta(minutes=40)).handed_off == []
    assert store.get(incident.id).officer_id == "v-day"
    assert recorder.told() == [("reassigned", "v-day")]


def test_an_acknowledged_incident_stays_with_its_officer(store: IncidentStore) -> None:
    incident = _open(store, EVENING, 80.0)
    store.transition(incident.id, "acknowledged", "v-day", "on it", now=EVENING)
    escalator = _escalator(store, Recorder())
    assert _tick(escalator, EVENING + timedelta(hours=1)).handed_off == []
    assert store.get(incident.id).officer_id == "v-day"


def test_run_ticks_when_woken_and_stops(tmp_path: Any) -> None:
    store = IncidentStore(f"sqlite:///{tmp_path / 'incidents.sqlite'}")
    recorder = Recorder()
    escalator = Escalator(_grid(), store, Notifier([recorder]), interval_s=60)

    async def run() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(escalator.run(stop))
        await asyncio.sleep(0.2)  # the first tick: nothing to do
        await asyncio.to_thread(_open, store, datetime.now(UTC), 160.0)
        escalator.wake()
        deadline = time.monotonic() + 10
        while not recorder.notices and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(task, 5)

    asyncio.run(run())
    assert [action for action, _ in recorder.told()] == ["created"]  # by day or by night
    store.close()
