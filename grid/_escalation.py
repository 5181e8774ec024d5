"""Escalation: an incident nobody acknowledges climbs village -> township -> county, and an
open incident follows the duty roster; every officer who gets one is told.

All state is in the store, so a restarted service carries on where the last one stopped:
the timer is ``ack_due_at``; who was assigned when, and which notices went out, are rows of
the audit log. One tick:

1. Hand-off: an open incident whose cell's duty passed to another officer since it was
   assigned (a roster hand-off time between its last assignment and now) goes to the officer
   now on duty at the same level, with a fresh timer. A manual reassignment stands until the
   next change of duty.
2. Escalation: each overdue incident goes one level up its path
   (``Registry.escalation_path``, up to the policy's ``up_to``) to the officer on duty
   there, with a fresh timer (none at the top). Overdue with no level left: the timer stops
   and the incident stays with its officer.
3. Notices: for each active incident, the latest change that assigned it (created,
   reopened, escalated, handed off, reassigned) is sent to the assigned officer unless a
   ``notified`` audit row already names it. Earlier changes are superseded and not sent;
   a notice for an open incident that was acknowledged meanwhile is not sent either.

Delivery is at least once: a crash between sending and recording repeats that notice once.
A notice is recorded (and not sent again) whatever its channels did; if nobody hears of
it, the timer passes the incident up. One service per store: two would both send.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from grid._notify import ACTIONS, Notice, Notifier
from grid._router import Clock, wall_clock
from grid._store import LEVELS, AuditEntry, Incident, IncidentError, IncidentStore
from tianwang.registry import Cell, Officer, Registry

log = logging.getLogger(__name__)

TICK_S = 30.0
NOTICE_CONCURRENCY = 16  # notices sent at once; each fans out to its channels
_ASSIGNING = frozenset(ACTIONS)


@dataclass(slots=True)
class Tick:
    """What one tick did, by incident id."""

    handed_off: list[int] = field(default_factory=list)
    escalated: list[int] = field(default_factory=list)
    stopped: list[int] = field(default_factory=list)
    notified: list[int] = field(default_factory=list)  # notice (audit entry) ids


def _assigns(entry: AuditEntry) -> bool:
    if entry.action == "transition":
        return entry.to_status == "open"  # reopened by an officer
    return entry.action in _ASSIGNING


class Escalator:
    def __init__(
        self,
        registry: Registry,
        store: IncidentStore,
        notifier: Notifier | None = None,
        clock: Clock = wall_clock,
        *,
        interval_s: float = TICK_S,
    ) -> None:
        """``notifier`` None: changes are made but notices wait (for a service that has
        one). ``interval_s``: time between ticks of ``run``."""
        self.registry = registry
        self.store = store
        self.notifier = notifier
        self.clock = clock
        self.interval_s = interval_s
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # --- where an incident goes ---------------------------------------------------------

    def path(self, incident: Incident) -> tuple[Cell, ...]:
        """The incident's cells, village (or township, for a township parent) upwards."""
        policy = self.registry.escalation[incident.severity]
        keys = [(incident.township, incident.village), (incident.township,), ()]
        if incident.scope != "node":
            keys = keys[1:]
        cells = (self.registry.cells.get(k) for k in keys)
        top = LEVELS.index(policy.up_to)
        return tuple(c for c in cells if c is not None and c.rota is not None
                     and LEVELS.index(c.level) <= top)  # fmt: skip

    def _cell_at(self, incident: Incident) -> Cell | None:
        return next((c for c in self.path(incident) if c.level == incident.assigned_level), None)

    def _timer(self, incident: Incident) -> timedelta:
        return timedelta(minutes=self.registry.escalation[incident.severity].ack_within_min)

    # --- 1. hand-off --------------------------------------------------------------------

    def hand_off(self, now: datetime) -> list[Incident]:
        moved = []
        for incident, audit in self.store.active_with_audit():
            if incident.status != "open":
                continue  # an acknowledged incident stays with whoever took it on
            cell = self._cell_at(incident)
            since = next((a.at for a in reversed(audit) if _assigns(a)), None)
            if cell is None or since is None or not self.registry.hand_off_times(cell, since, now):
                continue
            officer = self.registry.on_duty(cell, now)
            if officer.id == incident.officer_id:
                continue
            due = now + self._timer(incident) if incident.ack_due_at else None
            reason = f"change of duty in {cell.path}"
            try:
                moved.append(
                    self.store.hand_off(
                        incident.id, incident.officer_id, officer.id, now, due, reason
                    )
                )
            except IncidentError as exc:
                log.info("hand-off of incident #%d skipped: %s", incident.id, exc)
        return moved

    # --- 2. escalation ------------------------------------------------------------------

    def escalate(self, now: datetime) -> tuple[list[Incident], list[Incident]]:
        """(escalated, stopped) incidents."""
        escalated, stopped = [], []
        for incident in self.store.due_for_escalation(now):
            level = LEVELS.index(incident.assigned_level)
            higher = [c for c in self.path(incident) if LEVELS.index(c.level) > level]
            minutes = self.registry.escalation[incident.severity].ack_within_min
            try:
                if not higher:
                    stopped.append(self.store.stop_timer(
                        incident.id, now, f"not acknowledged within {minutes:g} min; no level "
                        f"above {incident.assigned_level} for {incident.severity}",
                    ))  # fmt: skip
                    continue
                cell = higher[0]
                officer = self.registry.on_duty(cell, now)
                due = now + self._timer(incident) if len(higher) > 1 else None
                escalated.append(self.store.escalate(
                    incident.id, cell.level, officer.id, now, ack_due_at=due,
                    reason=f"not acknowledged within {minutes:g} min ({incident.severity})",
                    only_if_due=True,
                ))  # fmt: skip
            except IncidentError as exc:  # acknowledged or changed since it was read
                log.info("escalation of incident #%d skipped: %s", incident.id, exc)
        return escalated, stopped

    # --- 3. notices ---------------------------------------------------------------------

    def pending_notices(self) -> list[Notice]:
        notices = []
        for incident, audit in self.store.active_with_audit():
            latest = next((a for a in reversed(audit) if _assigns(a)), None)
            if latest is None:
                continue
            told = any(a.action == "notified" and (a.detail or {}).get("notice") == latest.id
                       for a in audit)  # fmt: skip
            if told or (incident.status != "open" and latest.action != "reassigned"):
                continue
            officer = self.registry.officers.get(incident.officer_id)
            if officer is None:  # e.g. "township:<id>": a township with no 网格长
                continue
            notices.append(self._notice(incident, latest, officer))
        return notices

    def _notice(self, incident: Incident, entry: AuditEntry, officer: Officer) -> Notice:
        action = "reopened" if entry.action == "transition" else entry.action
        return Notice(entry.id, action, incident, officer, self._place(incident),
                      entry.reason, entry.at)  # fmt: skip

    def _place(self, incident: Incident) -> str:
        node = self.registry.nodes.get(incident.node or "")
        if node is not None:
            return self.registry.place_name(node)
        township = self.registry.township_names.get(incident.township, incident.township)
        return f"{self.registry.county_name} {township}"

    async def deliver(self, notices: list[Notice], now: datetime) -> list[int]:
        """Send each notice and record what each channel did; the ids sent."""
        if self.notifier is None:
            return []
        notifier = self.notifier
        gate = asyncio.Semaphore(NOTICE_CONCURRENCY)

        async def one(notice: Notice) -> int:
            async with gate:
                deliveries = await notifier.send(notice)
            sent = [d.channel for d in deliveries if d.status == "sent"]
            reason = f"sent via {', '.join(sent)}" if sent else "no channel delivered"
            detail = {"notice": notice.audit_id, "officer": notice.officer.id,
                      "deliveries": [d.record() for d in deliveries]}  # fmt: skip
            await asyncio.to_thread(
                self.store.record_notification, notice.incident.id, reason, detail, now
            )
            return notice.audit_id

        return list(await asyncio.gather(*map(one, notices)))

    # --- the service --------------------------------------------------------------------

    def advance(self, now: datetime) -> Tick:
        """Steps 1 and 2 (store only, blocking)."""
        handed = self.hand_off(now)
        escalated, stopped = self.escalate(now)
        return Tick([i.id for i in handed], [i.id for i in escalated], [i.id for i in stopped])

    async def tick(self, now: datetime | None = None) -> Tick:
        now = now or self.clock()
        done = await asyncio.to_thread(self.advance, now)
        notices = await asyncio.to_thread(self.pending_notices)
        done.notified = await self.deliver(notices, now)
        return done

    def wake(self) -> None:
        """Tick now rather than at the next interval (e.g. the router just opened an
        incident). Safe from any thread."""
        if self._loop is not None and self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    async def run(self, stop: asyncio.Event) -> None:
        """Tick every ``interval_s`` (or when woken) until ``stop`` is set. A tick that
        fails (the database away) is logged and tried again at the next one."""
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        try:
            while not stop.is_set():
                self._wake.clear()
                try:
                    await self.tick()
                except Exception:
                    log.exception("escalation tick failed; retrying in %g s", self.interval_s)
                waits = [asyncio.ensure_future(e.wait()) for e in (stop, self._wake)]
                await asyncio.wait(waits, timeout=self.interval_s, return_when="FIRST_COMPLETED")
                for w in waits:
                    w.cancel()
        finally:
            self._loop = self._wake = None
