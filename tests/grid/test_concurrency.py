"""Concurrent writers for one key: exactly one active incident, every event counted once."""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path

from grid import IncidentStore
from tests.grid.conftest import draft

THREADS = 8
CALLS = 25


def _hammer(store: IncidentStore, start: threading.Barrier, node: str = "n1") -> None:
    start.wait()
    for i in range(CALLS):
        store.open_or_extend(draft(node, value=80.0 + i))


def _run_threads(store: IncidentStore, nodes: list[str]) -> None:
    start = threading.Barrier(len(nodes))
    threads = [threading.Thread(target=_hammer, args=(store, start, n)) for n in nodes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_threads_opening_one_key_make_one_incident(store_url: str) -> None:
    store = IncidentStore(store_url)
    _run_threads(store, ["n1"] * THREADS)
    [incident] = store.all()
    assert (incident.status, incident.events) == ("open", THREADS * CALLS)
    assert [a.action for a in store.audit(incident.id)] == ["created"]
    store.close()


def test_threads_opening_nodes_of_one_township_make_one_parent(store_url: str) -> None:
    store = IncidentStore(store_url)
    _run_threads(store, [f"n{i}" for i in range(THREADS)])
    parents = [i for i in store.all() if i.scope == "township"]
    nodes = [i for i in store.all() if i.scope == "node"]
    assert len(parents) == 1 and len(nodes) == THREADS
    assert {i.parent_id for i in nodes} == {parents[0].id}
    assert all(i.events == CALLS for i in nodes)
    assert parents[0].events == THREADS
    store.close()


def _process(url: str, start: multiprocessing.synchronize.Barrier) -> None:
    store = IncidentStore(url)
    start.wait()
    for i in range(CALLS * 4):
        store.open_or_extend(draft("n1", value=float(i)))
    store.close()


def test_two_processes_on_one_sqlite_file_make_one_incident(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'incidents.sqlite'}"
    spawn = multiprocessing.get_context("spawn")
    start = spawn.Barrier(2)
    workers = [spawn.Process(target=_process, args=(url, start)) for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
        assert w.exitcode == 0
    [incident] = IncidentStore(url).all()
    assert incident.events == 2 * CALLS * 4
