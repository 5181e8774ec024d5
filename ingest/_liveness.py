"""Liveness: a deadman timer per node, on its expected reporting period.

Silence, NaN and a dropped message are three different states: a node that sends nothing
for ``periods`` sampling periods (at least ``min_silence_s``) is *offline* (an event for
grid, closed when it reports again); a reading without a value is the detector's ``missing``
anomaly; a message lost on the way shows as a gap in the node's seq numbers (``SeqWindow``
counts them). The node's own retained status (online, offline, or its last will) is kept
too, as what the node said, apart from what ingest observed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from detect import ExceedanceEvent
from tianwang.registry import Registry

RULE_OFFLINE = "node_offline"
STANDARD = "tianwang liveness"


class Deadman:
    """``seen(node)`` on every accepted message; ``check()`` returns the nodes that went
    silent (``open``) or came back (``close``) since the last check."""

    def __init__(self, registry: Registry, clock: Callable[[], float], periods: float = 3.0,
                 min_silence_s: float = 180.0,
                 nodes: Iterable[str] | None = None) -> None:  # fmt: skip
        """``nodes``: the ones this worker receives (its topic filters); None: every node of
        the registry. Another worker's nodes are that worker's to time."""
        self.registry = registry
        self.clock = clock
        now = clock()
        # a node never heard from since start is timed from the start
        self.last_seen = {node: now for node in (registry.nodes if nodes is None else nodes)}
        self.limit_s = {node_id: max(periods * node.sampling_s, min_silence_s)
                        for node_id, node in registry.nodes.items()}  # fmt: skip
        self.offline: dict[str, float] = {}  # node -> last seen when it went silent
        self.said: dict[str, str] = {}  # node -> state in its retained status

    def seen(self, node: str) -> None:
        self.last_seen[node] = self.clock()

    def check(self) -> list[ExceedanceEvent]:
        now = self.clock()
        events = []
        for node, last in self.last_seen.items():
            silent = now - last
            if node in self.offline:
                if silent < self.limit_s[node]:  # it reported again
                    events.append(self._event("close", node, self.offline.pop(node), now, silent))
            elif silent >= self.limit_s[node]:
                self.offline[node] = last
                events.append(self._event("open", node, last, now, silent))
        return events

    def _event(self, kind: str, node: str, since: float, now: float,
               silent: float) -> ExceedanceEvent:  # fmt: skip
        limit = self.limit_s[node]
        return ExceedanceEvent(
            kind=kind, node=node, quantity="", rule=RULE_OFFLINE, hour_start_s=int(now),  # type: ignore[arg-type]
            value=round(silent, 1), limit=limit, unit="s", standard=STANDARD, edition="",
            clause=f"no data for {limit:g} s (its expected reporting periods)",
            episode_start_s=int(since), peak=round(silent, 1),
        )  # fmt: skip
