"""Partitioning the county set over N ingest workers by topic filters.

A worker subscribes to whole townships, so every reading of a node, and every neighbour the
drift rule compares it with, stays with one worker and its detector state. Townships are
dealt by a stable hash of their path (crc32), so adding a township moves only that one.
"""

from __future__ import annotations

import zlib

from tianwang.registry import Registry
from tianwang.topics import PREFIX


def township_of_worker(county: str, township: str, workers: int) -> int:
    return zlib.crc32(f"{county}/{township}".encode()) % workers


KINDS = ("data", "status", "health")


def partition_filters(registry: Registry, workers: int, index: int,
                      kinds: tuple[str, ...] = KINDS) -> list[str]:  # fmt: skip
    """The topic filters of worker ``index`` of ``workers``: one per township and kind."""
    if workers < 1 or not 0 <= index < workers:
        raise ValueError(f"worker {index} of {workers}: need 0 <= index < workers")
    mine = [t for t in sorted(registry.township_names)
            if township_of_worker(registry.county, t, workers) == index]  # fmt: skip
    return [f"{PREFIX}/{registry.county}/{t}/+/+/{kind}" for t in mine for kind in kinds]
