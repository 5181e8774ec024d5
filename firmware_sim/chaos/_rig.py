"""The test rig of the chaos scenarios: private Mosquitto and InfluxDB, ``tianwang ingest`` as a
child process (so it can be SIGKILLed), a fleet of real edge agents on an accelerated clock, and
the counts a scenario reports.

Counts: ``published`` = readings the agents accepted (their outboxes' seq numbers, 0 to
``next_seq - 1`` per node); ``stored`` = distinct (node, seq) read back from InfluxDB by query;
``lost`` = accepted and not stored; ``duplicated`` = stored more than once; ``detected`` =
readings in the detector's state, as ingest counts them across restarts
(``detector_readings``: checkpoint plus journal, ``ingest/_journal.py``), printed when it stops.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from firmware_sim import Fleet, Scenario
from grid import Incident, IncidentStore
from ingest import InfluxV1Sink, StoredReading, stored_readings
from tianwang.clock import AcceleratedClock
from tianwang.codec import Reading, encode_data
from tianwang.mqtt import BrokerAddress, MqttLink
from tianwang.quantities import quantity_table
from tianwang.registry import Registry
from tianwang.services import InfluxDB, Mosquitto

ROOT = Path(__file__).resolve().parents[2]
INGEST_START_TIMEOUT_S = 90.0  # a cold Numba cache on a busy box takes tens of seconds
DRAIN_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 60.0
REGULATORY_RULES = ("1h_mean", "24h_mean", "8h_max")


@dataclass(slots=True)
class ChaosResult:
    """One scenario's figures; ``line`` is what ``make chaos`` prints."""

    chaos: str
    published: int
    stored: int
    detected: int
    lost: int
    duplicated: int
    incidents: int = 0
    incidents_expected: int = 0
    incidents_missing: int = 0
    incidents_unexpected: int = 0
    duplicate_incidents: int = 0
    wall_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def line(self) -> dict[str, Any]:
        own = {k: getattr(self, k) for k in self.__slots__ if k != "extra"}  # type: ignore[attr-defined]
        return {**own, **self.extra}


class IngestProcess:
    """``tianwang ingest`` on the rig's broker and InfluxDB, one worker folder that survives
    restarts; ``kill`` is SIGKILL, ``stop`` SIGTERM and returns the counters it prints."""

    def __init__(self, grid: Path, broker: Mosquitto, influx: InfluxDB, var: Path,
                 extra_args: Sequence[str] = ()) -> None:  # fmt: skip
        self.var = var
        self.command = [
            sys.executable, "-m", "tianwang.cli", "-v", "ingest", "--grid", str(grid), "--broker",
            broker.url, "--influx", influx.url, "--var", str(var), "--checkpoint-s", "1",
            *extra_args,
        ]  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def work(self) -> Path:
        return self.var / "ingest-0"

    def start(self) -> Self:
        self.var.mkdir(parents=True, exist_ok=True)
        with (self.var / "ingest.log").open("ab") as log:
            self.proc = subprocess.Popen(
                self.command, stdout=subprocess.PIPE, stderr=log, cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )  # fmt: skip
        self.starts += 1
        return self

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=STOP_TIMEOUT_S)

    def stop(self) -> dict[str, Any]:
        """SIGTERM; the counters of the run (its last stdout line)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=STOP_TIMEOUT_S)
        lines = out.decode().strip().splitlines()
        if self.proc.returncode != 0 or not lines:
            raise RuntimeError(f"ingest exited with {self.proc.returncode}; see {self.var}")
        return dict(json.loads(lines[-1]))

    def store(self) -> IncidentStore:
        return IncidentStore(f"sqlite:///{self.work / 'incidents.sqlite'}")


@dataclass(frozen=True, slots=True)
class Tally:
    stored: int
    lost: int
    duplicated: int
    unexpected: int  # stored (node, seq) no agent accepted


def accepted(fleet: Fleet) -> dict[str, int]:
    """Readings each agent accepted; every one must have left its outbox by now."""
    for agent in fleet.agents:
        if len(agent.outbox) or agent.outbox.dropped:
            raise AssertionError(f"{agent.config.node}: {len(agent.outbox)} readings unsent, "
                                 f"{agent.outbox.dropped} dropped by the outbox")  # fmt: skip
    return {a.config.node: a.outbox.next_seq for a in fleet.agents}


def tally(published: dict[str, int], rows: list[StoredReading]) -> Tally:
    """Stored readings of the published nodes against what they accepted."""
    copies = Counter((r.node, r.seq) for r in rows if r.node in published)
    want = {(node, seq) for node, n in published.items() for seq in range(n)}
    return Tally(
        stored=len(copies),
        lost=len(want - copies.keys()),
        duplicated=sum(c - 1 for c in copies.values()),
        unexpected=len(copies.keys() - want),
    )


async def wait_stored(sink: InfluxV1Sink, total: int, timeout_s: float = DRAIN_TIMEOUT_S
                      ) -> list[StoredReading]:  # fmt: skip
    """Poll InfluxDB until ``total`` distinct readings are there, or the timeout; the rows."""
    deadline = time.monotonic() + timeout_s
    while True:
        rows = await stored_readings(sink)
        if len({(r.node, r.seq) for r in rows}) >= total or time.monotonic() > deadline:
            return rows
        await asyncio.sleep(1.0)


async def wait_ingest_up(sink: InfluxV1Sink, ingest: IngestProcess, broker: Mosquitto,
                         registry: Registry, probe_node: str) -> None:  # fmt: skip
    """Until ingest has subscribed (its persistent session exists from then on): publish one
    probe reading (seq 0) of ``probe_node``, a node outside the fleet, until it is stored.
    Repeats are duplicates to ingest; the one reading counts in ``detected`` (subtract it)."""
    node = registry.nodes[probe_node]
    quantity = node.quantities[0]
    unit = quantity_table().quantities[quantity].unit
    ts_ms = (int(time.time()) // 3600 - 48) * 3_600_000  # two days ago: inside ingest's window
    payload = encode_data(probe_node, [Reading(probe_node, 0, ts_ms, quantity, 1.0, unit, "N")])
    deadline = time.monotonic() + INGEST_START_TIMEOUT_S
    async with MqttLink(BrokerAddress.parse(broker.url), "chaos-probe") as link:
        while time.monotonic() < deadline:
            assert ingest.proc is not None and ingest.proc.poll() is None, "ingest exited"
            await link.publish(node.place.topic("data"), payload)
            await asyncio.sleep(0.5)
            if await stored_readings(sink, probe_node):
                return
    raise TimeoutError(f"ingest not up after {INGEST_START_TIMEOUT_S} s; see {ingest.var}")


def make_fleet(registry: Registry, scenario: Scenario, broker: Mosquitto, speed: float,
               nodes: Sequence[str], broker_control: Any = None) -> Fleet:  # fmt: skip
    start = scenario.start_time(time.time())
    end = start + scenario.duration_h * 3600
    return Fleet(registry, scenario, BrokerAddress.parse(broker.url),
                 clock=AcceleratedClock(start, speed), start=start, end=end, nodes=list(nodes),
                 stagger=True, health_s=3600, broker_control=broker_control)  # fmt: skip


def expected_incidents(scenario: Scenario, fleet: Fleet, registry: Registry
                       ) -> set[tuple[str, str, str]]:  # fmt: skip
    """(node, quantity, 1h_mean) for every episode label of a fleet node whose quantity has an
    hourly limit: the scenarios' episodes are sized to exceed it (see _scenarios.py)."""
    hourly = {"NO2", "SO2", "CO", "O3"}  # GB 3095 has 1-hour limits for these
    nodes = {a.config.node for a in fleet.agents}
    return {(label["node"], label["quantity"], "1h_mean")
            for label in scenario.ground_truth(fleet.start)
            if label["category"] == "episode" and label["node"] in nodes
            and label["quantity"] in hourly
            and label["quantity"] in registry.nodes[label["node"]].quantities}  # fmt: skip


def compare_incidents(found: list[Incident], expected: set[tuple[str, str, str]],
                      result: ChaosResult) -> None:  # fmt: skip
    """Node incidents against the expected (node, quantity, rule) set; duplicates are
    incidents beyond the first per (node, quantity, rule) and per township parent."""
    nodes = [(i.node or "", i.quantity, i.rule) for i in found if i.scope == "node"]
    parents = [(i.township, i.quantity, i.rule) for i in found if i.scope != "node"]
    keys = set(nodes)
    result.incidents = len(nodes)
    result.incidents_expected = len(expected)
    result.incidents_missing = len(expected - keys)
    result.incidents_unexpected = len(keys - expected)
    result.duplicate_incidents = len(nodes) - len(keys) + len(parents) - len(set(parents))
    result.extra["township_incidents"] = len(parents)
