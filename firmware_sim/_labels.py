"""Ground truth: one label per injected event or fault, node and quantity, to score detection.

Every label has the keys of ``LABEL_FIELDS``:

- ``id``: ``<event id>/<node or *>/<quantity or *>``, unique within a scenario (a replay gap
  adds ``@<start_min>``); ``episode``: the scenario entry's id; ``category``: ``episode``,
  ``sensor_fault``, ``network_fault`` or ``replay``; ``kind``: plume, discharge,
  construction_dust, drift, spike, stuck, out_of_range, dropout, node_offline,
  broker_restart, duplicate_delivery, out_of_order, clock_skew, replay_gap.
- ``node`` and ``quantity``: null for what affects every node / every quantity of a node
  (network faults: quantity null; a broker restart: node null too).
- ``start_min``, ``end_min``: the half-open window ``[start, end)`` in minutes of the run, as
  it happens at that node (a plume's delay included); ``start``, ``end``: the same as ISO 8601
  UTC strings (``2026-05-31T16:07:30Z``), or null when the run's start is not known (an
  ``auto`` scenario asked without ``start``).
- ``add`` (the episode's amount at its source) and ``peak_add`` (the largest increment the node
  sees, after decay), canonical units; null for faults. ``params``: the entry's other numbers
  (a plume's ``delay_min``, ``scale``, ``distance_km``; a drift's ``rate_per_h``; ...).
"""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from firmware_sim._faults import PARAM
from firmware_sim._network import (
    BrokerRestart,
    ClockSkew,
    DuplicateDelivery,
    NetworkFault,
    NodeOffline,
    OutOfOrder,
)

if TYPE_CHECKING:
    from firmware_sim._scenario import Scenario

LABEL_FIELDS = (
    "id", "category", "kind", "episode", "node", "quantity", "start", "end", "start_min",
    "end_min", "add", "peak_add", "params",
)  # fmt: skip


def iso(t: float) -> str:
    moment = datetime.fromtimestamp(round(t, 3), UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    ms = moment.microsecond // 1000
    return f"{text}.{ms:03d}Z" if ms else f"{text}Z"


class _Labels:
    def __init__(self, origin: float | None) -> None:
        self.origin = origin
        self.rows: list[dict[str, Any]] = []

    def add(self, category: str, kind: str, event: str, node: str | None, quantity: str | None,
            begin: float, end: float, params: dict[str, Any] | None = None, *,
            add: float | None = None, peak_add: float | None = None) -> None:  # fmt: skip
        ident = f"{event}/{node or '*'}/{quantity or '*'}"
        if kind == "replay_gap":
            ident += f"@{begin:g}"
        self.rows.append({
            "id": ident, "category": category, "kind": kind, "episode": event, "node": node,
            "quantity": quantity,
            "start": None if self.origin is None else iso(self.origin + begin * 60),
            "end": None if self.origin is None else iso(self.origin + end * 60),
            "start_min": begin, "end_min": end, "add": add, "peak_add": peak_add,
            "params": params or {},
        })  # fmt: skip


def _network_params(f: NetworkFault) -> dict[str, Any]:
    if isinstance(f, NodeOffline):
        return {"power_off": f.power_off}
    if isinstance(f, DuplicateDelivery):
        return {"every": f.every}
    if isinstance(f, OutOfOrder):
        return {"window": f.window}
    if isinstance(f, ClockSkew):
        return {"offset_s": f.offset_s}
    return {}


def ground_truth(scenario: Scenario, start: float | None = None) -> list[dict[str, Any]]:
    """Every label of ``scenario`` for a run that starts at ``start`` (epoch seconds UTC;
    default: the scenario's fixed start, if it has one). Sorted by start, then id."""
    out = _Labels(start if start is not None else scenario.start)
    grid = scenario.grid_nodes
    for e in scenario.episodes:
        for node in sorted(e.nodes):
            measured = grid[node].quantities if node in grid else tuple(e.add)
            r = e.reach_of(node)
            begin = e.start_min + r.delay_min
            where = (
                {"delay_min": r.delay_min, "scale": r.scale, "distance_km": r.distance_km}
                if e.source
                else {}
            )
            for q, amount in e.add.items():
                if q in measured:
                    out.add("episode", e.kind, e.id, node, q, begin, begin + e.duration_min,
                            where, add=amount, peak_add=e.peak(q, node))  # fmt: skip
    for f in scenario.sensor_faults:
        for node in sorted(f.nodes):
            if node not in grid:
                continue
            begin, end = f.window_min(grid[node].sampling_s)
            for q in f.quantities_of(grid[node]):
                extra = {PARAM[f.kind]: f.magnitude[q]} if q in f.magnitude else {}
                out.add("sensor_fault", f.kind, f.id, node, q, begin, end, extra)
    for n in scenario.network_faults:
        begin, end = n.start_min, n.start_min + n.duration_min
        if isinstance(n, BrokerRestart):
            out.add("network_fault", n.kind, n.id, None, None, begin, end)
            continue
        for node in sorted(n.nodes):
            out.add("network_fault", n.kind, n.id, node, None, begin, end, _network_params(n))
    run_min = scenario.duration_h * 60
    for replay in scenario.replays:
        origin = replay.from_time if replay.from_time is not None else out.origin
        if origin is None:
            continue
        nodes = sorted(grid if replay.nodes is None else replay.nodes)
        for j, q in enumerate(replay.quantities):
            gaps = replay.series.gaps(j, origin, origin + run_min * 60)
            for node in nodes:
                if node not in grid or q not in grid[node].quantities:
                    continue
                for lo, hi in gaps:
                    out.add("replay", "replay_gap", "replay", node, q, (lo - origin) / 60,
                            (hi - origin) / 60, {"station_csv": replay.series.path})  # fmt: skip
    out.rows.sort(key=lambda row: (row["start_min"], row["id"]))
    return out.rows


def write_labels(scenario: Scenario, start: float, path: str | Path) -> int:
    """Write the ground truth of a run that started at ``start`` to ``path``: JSON lines if
    it ends in ``.jsonl`` or ``.ndjson``, else CSV with a header row (``LABEL_FIELDS``; null
    is an empty cell, ``params`` a JSON object). Returns the number of labels."""
    rows = ground_truth(scenario, start)
    target = Path(path)
    with target.open("w", encoding="utf-8", newline="") as handle:
        if target.suffix in (".jsonl", ".ndjson"):
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        else:
            writer = csv.DictWriter(handle, LABEL_FIELDS)
            writer.writeheader()
            for row in rows:
                writer.writerow({**row, "params": json.dumps(row["params"], sort_keys=True)})
    return len(rows)
