"""Routing throughput: detector events through ``IncidentRouter`` into ``IncidentStore``,
on SQLite (a file) and on PostgreSQL (a private, durable cluster).

1,000 nodes (10 townships of 10 villages of 10 nodes), PM2.5 and PM10 each: 2,000 series,
every one with an exceedance episode of one ``open``, eight hourly ``update`` and one
``close`` event, the episodes staggered over the hours so that each hour's list mixes opens
(new incidents, township parents) with updates. Lists of at most BATCH events go to
``IncidentRouter.handle``, as ingest hands over a flush, each recorded in one transaction.
Prints one JSON line per store; the target is >= 2,000 events/s on SQLite.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

from detect import ExceedanceEvent
from grid import IncidentRouter, IncidentStore
from tianwang.registry import Registry, parse_registry
from tianwang.services import PostgreSQL

TOWNSHIPS = 10
VILLAGES = 10
NODES = 10
QUANTITIES = ("PM2.5", "PM10")
UPDATES = 8
BATCH = 500
T0_S = 1_772_352_000  # a whole hour


def _registry() -> Registry:
    def node(t: int, v: int, n: int) -> dict[str, Any]:
        return {
            "id": f"n-{t}-{v}-{n}",
            "lat": 36.0 + t / 100,
            "lon": 118.0 + v / 100 + n / 1000,
            "zone_class": 2,
            "sampling_s": 60,
            "quantities": list(QUANTITIES),
        }

    def village(t: int, v: int) -> dict[str, Any]:
        officer = {"id": f"off-{t}-{v}", "name": f"Officer {t}-{v}", "phone": ""}
        nodes = [node(t, v, n) for n in range(NODES)]
        return {"id": f"v{v}", "name": f"Village {v}", "officer": officer, "nodes": nodes}

    townships = [
        {
            "id": f"t{t}",
            "name": f"Township {t}",
            "villages": [village(t, v) for v in range(VILLAGES)],
        }
        for t in range(TOWNSHIPS)
    ]
    county = {"id": "bench", "name": "Bench County", "timezone": "Asia/Shanghai"}
    return parse_registry({"county": county, "townships": townships})


def _event(kind: str, node: str, quantity: str, hour: int, start: int) -> ExceedanceEvent:
    value = 80.0 + hour
    return ExceedanceEvent(
        kind=kind,  # type: ignore[arg-type]
        node=node,
        quantity=quantity,
        rule="1h_mean",
        hour_start_s=T0_S + 3600 * hour,
        value=value,
        limit=75.0,
        unit="ug/m3",
        standard="GB 3095",
        edition="GB 3095-2012",
        clause="table 1",
        episode_start_s=T0_S + 3600 * start,
        peak=value,
    )


def _batches(registry: Registry) -> list[list[ExceedanceEvent]]:
    """Hour by hour; series i opens at hour i % 4 and runs UPDATES hours, then closes."""
    series = [(n, q) for n in registry.nodes for q in QUANTITIES]
    by_hour: dict[int, list[ExceedanceEvent]] = {}
    for i, (node, quantity) in enumerate(series):
        start = i % 4
        by_hour.setdefault(start, []).append(_event("open", node, quantity, start, start))
        for h in range(start + 1, start + 1 + UPDATES):
            by_hour.setdefault(h, []).append(_event("update", node, quantity, h, start))
        end = start + 1 + UPDATES
        by_hour.setdefault(end, []).append(_event("close", node, quantity, end, start))
    hours = [by_hour[h] for h in sorted(by_hour)]
    return [events[i : i + BATCH] for events in hours for i in range(0, len(events), BATCH)]


def _run(url: str, store_name: str, registry: Registry) -> dict[str, Any]:
    batches = _batches(registry)
    store = IncidentStore(url)
    notices: list[object] = []
    router = IncidentRouter(registry, store, notices.append)
    started = time.perf_counter()
    for events in batches:
        router.handle(events)
    elapsed = time.perf_counter() - started
    incidents = store.all()
    store.close()
    events = sum(map(len, batches))
    return {
        "bench": "routing",
        "events_per_s": round(events / elapsed),
        "store": store_name,
        "events": events,
        "batch": BATCH,
        "incidents": sum(i.scope == "node" for i in incidents),
        "township_parents": sum(i.scope == "township" for i in incidents),
        "notices": len(notices),
    }


def main() -> None:
    registry = _registry()
    with tempfile.TemporaryDirectory(prefix="bench-routing-") as folder:
        root = Path(folder)
        print(json.dumps(_run(f"sqlite:///{root / 'incidents.sqlite'}", "sqlite", registry)))
        with PostgreSQL(root / "postgresql", durable=True) as cluster:
            print(json.dumps(_run(cluster.url, "postgres", registry)))


if __name__ == "__main__":
    main()
