"""The incident store's lifecycle, audit, cool-down, township parents and escalation state,
each on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest

from grid import IncidentError, IncidentStore, UnknownIncident, load_findings
from tests.grid.conftest import T0, draft

DIGEST = "ab" * 32


def _walk_to_resolved(store: IncidentStore, incident_id: int, at=T0) -> None:
    store.transition(incident_id, "acknowledged", "off-v1", "on my way", now=at)
    store.transition(incident_id, "dispatched", "off-v1", "on site", now=at)
    store.transition(incident_id, "resolved", "off-v1", "burning stopped", "confirmed_source", at)


def test_open_then_extend_counts_events_and_keeps_the_peak(store: IncidentStore) -> None:
    first, created = store.open_or_extend(draft(value=80.0), now=T0)
    again, created_again = store.open_or_extend(draft(value=120.0), now=T0)
    extended = store.extend("n1", "PM2.5", "1h_mean", 90.0, now=T0)
    assert created and not created_again
    assert first.id == again.id == extended.id
    assert (extended.events, extended.value, extended.peak) == (3, 90.0, 120.0)
    assert (extended.status, extended.scope, extended.assigned_level) == (
        "open",
        "node",
        "village",
    )
    assert extended.started_at == T0
    assert [a.action for a in store.audit(first.id)] == ["created"]


def test_update_without_an_active_incident_is_ignored(store: IncidentStore) -> None:
    assert store.extend("n1", "PM2.5", "1h_mean", 90.0) is None
    assert store.all() == []


def test_other_quantity_or_rule_is_another_incident(store: IncidentStore) -> None:
    a, _ = store.open_or_extend(draft(), now=T0)
    b, _ = store.open_or_extend(draft(quantity="PM10"), now=T0)
    c, _ = store.open_or_extend(draft(rule="24h_mean"), now=T0)
    assert len({a.id, b.id, c.id}) == 3


def test_full_loop_is_audited_who_when_from_to_why(store: IncidentStore) -> None:
    incident, _ = store.open_or_extend(draft(), now=T0)
    times = [T0 + timedelta(minutes=m) for m in (5, 30, 90, 200)]
    store.transition(incident.id, "acknowledged", "off-v1", "received", now=times[0])
    store.transition(incident.id, "dispatched", "off-v1", "on site at the kiln", now=times[1])
    resolved = store.transition(
        incident.id, "resolved", "off-v1", "kiln stopped", "confirmed_source", times[2]
    )
    closed = store.transition(incident.id, "closed", "off-county", "finding accepted", now=times[3])
    assert (resolved.finding, resolved.ended_at) == ("confirmed_source", times[2])
    assert (closed.status, closed.finding, closed.ended_at) == (
        "closed",
        "confirmed_source",
        times[2],
    )
    moves = [
        (a.actor, a.at, a.from_status, a.to_status, a.reason)
        for a in store.audit(incident.id)
        if a.action == "transition"
    ]
    assert moves == [
        ("off-v1", times[0], "open", "acknowledged", "received"),
        ("off-v1", times[1], "acknowledged", "dispatched", "on site at the kiln"),
        ("off-v1", times[2], "dispatched", "resolved", "kiln stopped"),
        ("off-county", times[3], "resolved", "closed", "finding accepted"),
    ]
    assert store.audit(incident.id)[3].detail == {"finding": "confirmed_source"}


@pytest.mark.parametrize(
    ("path", "to", "finding"),
    [
        ([], "resolved", "confirmed_source"),  # nobody acknowledged it
        ([], "closed", None),
        ([], "dispatched", None),
        (["acknowledged"], "resolved", None),  # no finding
        (["acknowledged"], "resolved", "it went away"),  # not in the list
        (["acknowledged"], "dispatched", "sensor_fault"),  # a finding only when resolving
        (["acknowledged"], "cancelled", None),  # no such state
    ],
)
def test_disallowed_transitions_are_refused_and_change_nothing(
    store: IncidentStore, path: list[str], to: str, finding: str | None
) -> None:
    incident, _ = store.open_or_extend(draft(), now=T0)
    for state in path:
        store.transition(incident.id, state, "off-v1", "step")
    before = store.audit(incident.id)
    with pytest.raises(IncidentError):
        store.transition(incident.id, to, "off-v1", "try", finding)
    assert store.get(incident.id).status == (path[-1] if path else "open")
    assert store.audit(incident.id) == before


def test_a_transition_needs_who_and_why(store: IncidentStore) -> None:
    incident, _ = store.open_or_extend(draft(), now=T0)
    with pytest.raises(IncidentError, match="reason"):
        store.transition(incident.id, "acknowledged", "off-v1", " ")
    with pytest.raises(IncidentError, match="officer_id"):
        store.transition(incident.id, "acknowledged", "", "ok")
    with pytest.raises(UnknownIncident):
        store.transition(incident.id + 100, "acknowledged", "off-v1", "ok")


def test_findings_come_from_the_data_file() -> None:
    findings = load_findings()
    assert {"confirmed_source", "sensor_fault", "no_cause_found"} <= set(findings)


def test_events_extend_an_acknowledged_or_dispatched_incident(store: IncidentStore) -> None:
    incident, _ = store.open_or_extend(draft(), now=T0)
    store.transition(incident.id, "acknowledged", "off-v1", "received")
    again, created = store.open_or_extend(draft(value=99.0), now=T0)
    store.transition(incident.id, "dispatched", "off-v1", "on site")
    extended = store.extend("n1", "PM2.5", "1h_mean", 77.0)
    assert not created and again.id == extended.id == incident.id
    assert (extended.status, extended.events) == ("dispatched", 3)


def test_recurrence_within_the_cooldown_reopens(store: IncidentStore) -> None:
    incident, _ = store.open_or_extend(draft(), now=T0)
    _walk_to_resolved(store, incident.id, T0)
    reopened, created = store.open_or_extend(draft(value=95.0), now=T0 + timedelta(minutes=59))
    assert created and reopened.id == incident.id
    assert (reopened.status, reopened.finding, reopened.ended_at) == ("open", None, None)
    assert reopened.events == 2
    last = store.audit(incident.id)[-1]
    assert (last.action, last.actor, last.from_status, last.to_status) == (
        "reopened",
        "system",
        "resolved",
        "open",
    )
    assert "cool-down" in last.reason
    assert len(store.all()) == 1


def test_recurrence_after_a_closed_incident_within_the_cooldown_reopens(
    store: IncidentStore,
) -> None:
    incident, _ = store.open_or_extend(draft(), now=T0)
    _walk_to_resolved(store, incident.id, T0)
    store.transition(incident.id, "closed", "off-county", "accepted", now=T0)
    reopened, _ = store.open_or_extend(draft(), now=T0 + timedelta(minutes=10))
    assert reopened.id == incident.id
    assert store.audit(incident.id)[-1].from_status == "closed"


def test_recurrence_after_the_cooldown_is_a_new_incident(store: IncidentStore) -> None:
    incident, _ = store.open_or_extend(draft(), now=T0)
    _walk_to_resolved(store, incident.id, T0)
    fresh, created = store.open_or_extend(draft(), now=T0 + timedelta(minutes=61))
    assert created and fresh.id != incident.id
    assert store.get(incident.id).status == "resolved"


def test_manual_reopen_is_refused_while_another_incident_is_active(store: IncidentStore) -> None:
    old, _ = store.open_or_extend(draft(), now=T0)
    _walk_to_resolved(store, old.id, T0)
    store.open_or_extend(draft(), now=T0 + timedelta(hours=2))  # a new one, after the cool-down
    with pytest.raises(IncidentError, match="already active"):
        store.transition(old.id, "open", "off-county", "finding rejected")
    assert store.get(old.id).status == "resolved"


def test_a_rejected_finding_reopens_by_hand(store: IncidentStore) -> None:
    incident, _ = store.open_or_extend(draft(), now=T0)
    _walk_to_resolved(store, incident.id, T0)
    reopened = store.transition(incident.id, "open", "off-county", "photo shows smoke still")
    assert (reopened.status, reopened.finding) == ("open", None)


def test_notes_and_attachments_by_reference(store: IncidentStore) -> None:
    incident, _ = store.open_or_extend(draft(), now=T0)
    note = store.add_note(incident.id, "off-v1", "smell of burning plastic", now=T0)
    photo = store.add_attachment(
        incident.id, "off-v1", "s3://evidence/1.jpg", DIGEST, "image/jpeg", "the kiln", T0
    )
    assert [n.reason for n in store.notes(incident.id)] == ["smell of burning plastic"]
    assert store.attachments(incident.id) == [photo]
    assert photo.detail == {
        "url": "s3://evidence/1.jpg",
        "sha256": DIGEST,
        "media_type": "image/jpeg",
    }
    assert (note.actor, note.at, note.from_status, note.to_status) == ("off-v1", T0, "open", "open")
    with pytest.raises(IncidentError, match="sha256"):
        store.add_attachment(incident.id, "off-v1", "s3://evidence/2.jpg", "not-a-digest")
    with pytest.raises(IncidentError):
        store.add_note(incident.id, "off-v1", "")


def test_reassignment_is_audited(store: IncidentStore) -> None:
    incident, _ = store.open_or_extend(draft(), now=T0)
    moved = store.reassign(incident.id, "off-v2", "off-township", "v1's officer on leave", T0)
    assert moved.officer_id == moved.assigned_officer == "off-v2"
    last = store.audit(incident.id)[-1]
    assert (last.action, last.actor, last.reason) == (
        "reassigned",
        "off-township",
        "v1's officer on leave",
    )
    assert last.detail == {"from_officer": "off-v1", "to_officer": "off-v2"}


def test_escalation_state_survives_a_restart(store_url: str) -> None:
    due = T0 + timedelta(minutes=30)
    store = IncidentStore(store_url)
    late, _ = store.open_or_extend(draft("n1", ack_due_at=due, severity="critical"), now=T0)
    acked, _ = store.open_or_extend(draft("n2", township="t2", ack_due_at=due), now=T0)
    store.open_or_extend(draft("n3", township="t3"), now=T0)  # no timer
    store.transition(acked.id, "acknowledged", "off-v1", "received", now=T0)
    store.close()

    store = IncidentStore(store_url)  # a restart
    assert store.due_for_escalation(due - timedelta(seconds=1)) == []
    assert [i.id for i in store.due_for_escalation(due)] == [late.id]
    later = due + timedelta(minutes=30)
    up = store.escalate(late.id, "township", "off-t1", now=due, ack_due_at=later)
    assert (up.assigned_level, up.officer_id, up.ack_due_at, up.severity) == (
        "township",
        "off-t1",
        later,
        "critical",
    )
    assert store.due_for_escalation(due) == []
    assert [i.id for i in store.due_for_escalation(later)] == [late.id]
    with pytest.raises(IncidentError, match="cannot escalate"):
        store.escalate(late.id, "village", "off-v1", now=later)
    top = store.escalate(late.id, "county", "off-c", now=later)
    assert (top.assigned_level, top.ack_due_at) == ("county", None)
    escalations = [a for a in store.audit(late.id) if a.action == "escalated"]
    assert [(a.actor, a.detail["to_level"], a.detail["to_officer"]) for a in escalations] == [
        ("system", "township", "off-t1"),
        ("system", "county", "off-c"),
    ]
    store.close()


def test_resolved_incidents_are_not_due_nor_escalated(store: IncidentStore) -> None:
    incident, _ = store.open_or_extend(draft(ack_due_at=T0), now=T0)
    _walk_to_resolved(store, incident.id, T0)
    assert store.due_for_escalation(T0 + timedelta(hours=1)) == []
    with pytest.raises(IncidentError, match="not active"):
        store.escalate(incident.id, "township", "off-t1", now=T0)


def test_several_nodes_of_a_township_get_one_parent(store: IncidentStore) -> None:
    a, _ = store.open_or_extend(draft("n1"), now=T0)
    assert a.parent_id is None  # one node alone is not a township episode
    b, _ = store.open_or_extend(draft("n2", village="v2"), now=T0 + timedelta(minutes=5))
    c, _ = store.open_or_extend(
        draft("n3", village="v3", value=150.0), now=T0 + timedelta(minutes=9)
    )
    other, _ = store.open_or_extend(draft("n9", township="t2"), now=T0)
    pm10, _ = store.open_or_extend(draft("n4", quantity="PM10"), now=T0)
    parent = store.get(b.parent_id)
    assert c.parent_id == parent.id
    assert store.get(a.id).parent_id == parent.id
    assert other.parent_id is None and pm10.parent_id is None
    assert (parent.scope, parent.node, parent.township, parent.assigned_level) == (
        "township",
        None,
        "t1",
        "township",
    )
    assert parent.officer_id == "township:t1"  # no roster given: the township's role address
    assert (parent.events, parent.peak, parent.started_at) == (3, 150.0, T0)
    assert [i.id for i in store.children(parent.id)] == [a.id, b.id, c.id]
    assert [x.action for x in store.audit(parent.id)] == ["created"]
    assert [x.action for x in store.audit(a.id)] == ["created", "grouped"]
    assert store.audit(a.id)[-1].detail == {"parent_id": parent.id}


def test_a_stale_sibling_does_not_make_a_township_episode(store: IncidentStore) -> None:
    store.open_or_extend(draft("n1"), now=T0)
    late, _ = store.open_or_extend(draft("n2"), now=T0 + timedelta(minutes=31))
    assert late.parent_id is None
    assert all(i.scope == "node" for i in store.all())


def test_the_parent_goes_to_the_named_township_officer(store: IncidentStore) -> None:
    store.open_or_extend(draft("n1", township_officer_id="off-t1"), now=T0)
    b, _ = store.open_or_extend(draft("n2", township_officer_id="off-t1"), now=T0)
    assert store.get(b.parent_id).officer_id == "off-t1"
