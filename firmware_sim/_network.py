"""Network faults: they happen between the agent and the broker, so the fleet runner applies them.

A driver only produces values; it cannot lose, repeat or re-time a message. So these faults are
data here (typed, frozen) and the fleet applies them around each node's agent. Windows are
``[start_min, start_min + duration_min)`` of the run; ``window_s(start)`` gives them in epoch
seconds for a run that started at ``start``. What the fleet must do for each kind:

``node_offline`` (``NodeOffline``)
    For each node in ``nodes``, during the window the agent has no route to the broker: close
    its connection at the window's start and refuse every connection attempt until the end
    (the agent's backoff keeps retrying). With ``power_off: false`` (default) the agent keeps
    sampling into its outbox and, once it reconnects, delivers the backlog with the original
    sample times: nothing is lost, only late. With ``power_off: true`` the node is down: the
    fleet does not sample it during the window (no ``read()``, no outbox entries) and starts
    it again at the end; those samples never exist. Either way the broker sees the node's
    last will when the connection drops, and ingest should mark the node silent.
``broker_restart`` (``BrokerRestart``; no nodes: it is the county's broker)
    At the window's start stop the broker (Mosquitto: terminate the process, keeping its
    persistence file), and start it again on the same port at the end, so it is down for
    ``duration_min``. Every agent (and ingest) loses its connection and must reconnect; QoS 1
    messages in flight are re-sent by the outbox. Nothing may be lost.
``duplicate_delivery`` (``DuplicateDelivery``)
    During the window, publish every ``every``-th data message of each node in ``nodes``
    (default 1: every message) twice, with the same payload (same node, seqs and sample
    times). Ingest must store each reading once (dedup by node and seq).
``out_of_order`` (``OutOfOrder``)
    During the window, hold each node's data messages back in groups of ``window`` consecutive
    messages (default 4) and publish each full group in reverse order (newest first); at the
    end of the window publish whatever is held, also newest first. Seqs and sample times are
    unchanged, only the arrival order; ingest must neither drop nor reorder-reject them.
``clock_skew`` (``ClockSkew``)
    During the window the node's clock is ``offset_s`` seconds ahead (negative: behind):
    every reading the node *stamps* in the window carries sample time ``true + offset_s``.
    The fleet must still call ``SimulatedDriver.read`` with the true sample time (the
    physics happens at true time) and shift only the time the agent records and publishes,
    e.g. ``agent.store(tick + scenario.clock_offset_s(node, tick - start), values)``; it
    gives the offset at that many seconds into the run (0 outside every window). A large
    offset (e.g. +28800 s: local time stamped as UTC) lands readings in the wrong hour; ingest
    and the detector should flag them, not trust them.

Each kind is a label in the ground truth with ``quantity`` null (the whole node is affected);
a broker restart has ``node`` null too (every node).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from firmware_sim._parse import Fields, ScenarioError, targets
from firmware_sim._plume import MAX_MIN
from tianwang.registry import Registry

NETWORK_KINDS = (
    "node_offline", "broker_restart", "duplicate_delivery", "out_of_order", "clock_skew",
)  # fmt: skip
_COMMON_KEYS = ("id", "kind", "start_min", "duration_min")
_TARGET_KEYS = ("nodes", "villages", "townships")
MAX_OFFSET_S = 10 * 366 * 86400.0


@dataclass(frozen=True, slots=True)
class _Window:
    id: str
    start_min: float
    duration_min: float

    def window_s(self, start: float = 0.0) -> tuple[float, float]:
        """``[begin, end)`` in seconds: epoch seconds if ``start`` is the run's start."""
        begin = start + self.start_min * 60.0
        return begin, begin + self.duration_min * 60.0

    def active(self, elapsed_s: float) -> bool:
        """True at ``elapsed_s`` seconds after the run start."""
        return self.start_min * 60.0 <= elapsed_s < (self.start_min + self.duration_min) * 60.0


@dataclass(frozen=True, slots=True)
class NodeOffline(_Window):
    kind: ClassVar[str] = "node_offline"
    nodes: frozenset[str] = frozenset()
    power_off: bool = False  # the node takes no samples either


@dataclass(frozen=True, slots=True)
class BrokerRestart(_Window):
    kind: ClassVar[str] = "broker_restart"
    nodes: ClassVar[frozenset[str]] = frozenset()  # all of them


@dataclass(frozen=True, slots=True)
class DuplicateDelivery(_Window):
    kind: ClassVar[str] = "duplicate_delivery"
    nodes: frozenset[str] = frozenset()
    every: int = 1  # duplicate every n-th data message


@dataclass(frozen=True, slots=True)
class OutOfOrder(_Window):
    kind: ClassVar[str] = "out_of_order"
    nodes: frozenset[str] = frozenset()
    window: int = 4  # messages per reversed group


@dataclass(frozen=True, slots=True)
class ClockSkew(_Window):
    kind: ClassVar[str] = "clock_skew"
    nodes: frozenset[str] = frozenset()
    offset_s: float = 0.0  # stamped time minus true time


NetworkFault = NodeOffline | BrokerRestart | DuplicateDelivery | OutOfOrder | ClockSkew


def parse_network_fault(raw: object, registry: Registry, where: str,
                        run_min: float) -> NetworkFault:  # fmt: skip
    kind = Fields(raw, where, (*_COMMON_KEYS, *_TARGET_KEYS, "power_off", "every", "window",
                               "offset_s")).string("kind", choices=NETWORK_KINDS)  # fmt: skip
    extra = {
        "node_offline": ("power_off",),
        "broker_restart": (),
        "duplicate_delivery": ("every",),
        "out_of_order": ("window",),
        "clock_skew": ("offset_s",),
    }[kind]
    targeted = () if kind == "broker_restart" else _TARGET_KEYS
    fields = Fields(raw, where, (*_COMMON_KEYS, *targeted, *extra))
    common = (
        fields.ident("id"),
        fields.number("start_min", low=0),
        fields.number("duration_min", positive=True, high=MAX_MIN),
    )
    if common[1] >= run_min:
        raise ScenarioError(f"{fields.at('start_min')}: {common[1]:g} is after the run ends")
    if kind == "broker_restart":
        return BrokerRestart(*common)
    nodes = targets(fields, registry)
    if nodes is None:
        raise ScenarioError(f"{where}: needs nodes, villages or townships")
    if kind == "node_offline":
        return NodeOffline(*common, nodes=nodes, power_off=fields.boolean("power_off", False))
    if kind == "duplicate_delivery":
        return DuplicateDelivery(*common, nodes=nodes,
                                 every=fields.integer("every", 1, low=1, high=10**6))  # fmt: skip
    if kind == "out_of_order":
        return OutOfOrder(*common, nodes=nodes,
                          window=fields.integer("window", 4, low=2, high=10**4))  # fmt: skip
    offset = fields.number("offset_s", low=-MAX_OFFSET_S, high=MAX_OFFSET_S)
    if offset == 0:
        raise ScenarioError(f"{fields.at('offset_s')}: must not be 0")
    return ClockSkew(*common, nodes=nodes, offset_s=offset)


def faults_for(faults: Sequence[NetworkFault], node: str) -> tuple[NetworkFault, ...]:
    """The faults that affect ``node``: its own, and every broker restart."""
    return tuple(f for f in faults if isinstance(f, BrokerRestart) or node in f.nodes)


def offline_windows(
    faults: Sequence[NetworkFault], node: str, start: float = 0.0
) -> list[tuple[float, float]]:
    return sorted(f.window_s(start) for f in faults
                  if isinstance(f, NodeOffline) and node in f.nodes)  # fmt: skip


def broker_downtimes(
    faults: Sequence[NetworkFault], start: float = 0.0
) -> list[tuple[float, float]]:
    return sorted(f.window_s(start) for f in faults if isinstance(f, BrokerRestart))


def clock_offset_s(faults: Sequence[NetworkFault], node: str, elapsed_s: float) -> float:
    """Stamped minus true time at ``elapsed_s`` after the run start (offsets of overlapping
    windows add up)."""
    return sum(
        f.offset_s
        for f in faults
        if isinstance(f, ClockSkew) and node in f.nodes and f.active(elapsed_s)
    )
