"""The persistent outbox: every reading is numbered and stored before it is published, and
deleted only after the broker has acknowledged it (PUBACK, QoS 1).

SQLite in WAL mode. ``synchronous=FULL`` (the default) survives a power cut; ``NORMAL``
survives a killed process (kill -9) but may lose the last commits on power loss, and costs
less on an SD card. The size is bounded: beyond ``max_readings`` the oldest readings are
dropped and counted (a node offline for weeks keeps its newest data).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Literal

from tianwang.codec import Reading

Synchronous = Literal["FULL", "NORMAL", "OFF"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS reading (
    seq INTEGER PRIMARY KEY,
    ts_ms INTEGER NOT NULL,
    quantity TEXT NOT NULL,
    value REAL,
    unit TEXT NOT NULL,
    flag TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS counter (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO counter VALUES ('next_seq', 0), ('dropped', 0);
"""


class OutboxError(RuntimeError):
    """The outbox file cannot be opened or written."""


class Outbox:
    """Numbered, persistent readings of one node, oldest first.

    Args:
        path: SQLite file, or ":memory:" (simulation: nothing survives the process).
        node: the node id stamped on the readings.
        max_readings: bound; older readings are dropped (and counted) beyond it.
    """

    def __init__(self, path: str | Path, node: str, *, max_readings: int = 1_000_000,
                 synchronous: Synchronous = "FULL") -> None:  # fmt: skip
        if max_readings < 1:
            raise ValueError("max_readings must be positive")
        self.node = node
        self.max_readings = max_readings
        try:
            self._db = sqlite3.connect(str(path), isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous}")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise OutboxError(f"outbox {path}: {exc}") from exc
        self._depth = self._db.execute("SELECT count(*) FROM reading").fetchone()[0]

    @property
    def next_seq(self) -> int:
        return self._count("next_seq")

    @property
    def dropped(self) -> int:
        return self._count("dropped")

    def _count(self, name: str) -> int:
        row = self._db.execute("SELECT value FROM counter WHERE name = ?", (name,)).fetchone()
        return int(row[0])

    def __len__(self) -> int:
        return self._depth

    def put(self, ts_ms: int, values: list[tuple[str, float, str, str]]) -> list[Reading]:
        """Number and store the values of one sample in one transaction; returns the readings."""
        if not values:
            return []
        with self._transaction():
            first = self._count("next_seq")
            readings = [Reading(self.node, first + i, ts_ms, q, v, u, f)
                        for i, (q, v, u, f) in enumerate(values)]  # fmt: skip
            self._db.executemany(
                "INSERT INTO reading VALUES (?, ?, ?, ?, ?, ?)",
                [(r.seq, r.ts_ms, r.quantity, None if r.value != r.value else r.value, r.unit,
                  r.flag) for r in readings],
            )  # fmt: skip
            self._db.execute("UPDATE counter SET value = ? WHERE name = 'next_seq'",
                             (first + len(readings),))  # fmt: skip
            self._depth += len(readings)
            excess = self._depth - self.max_readings
            if excess > 0:
                self._drop_oldest(excess)
        return readings

    def _drop_oldest(self, count: int) -> None:
        self._db.execute(
            "DELETE FROM reading WHERE seq IN (SELECT seq FROM reading ORDER BY seq LIMIT ?)",
            (count,),
        )
        self._db.execute("UPDATE counter SET value = value + ? WHERE name = 'dropped'", (count,))
        self._depth -= count

    def peek(self, limit: int) -> list[Reading]:
        """The oldest ``limit`` readings, in seq order."""
        rows = self._db.execute(
            "SELECT seq, ts_ms, quantity, value, unit, flag FROM reading ORDER BY seq LIMIT ?",
            (limit,),
        ).fetchall()
        return [Reading(self.node, s, t, q, float("nan") if v is None else v, u, f)
                for s, t, q, v, u, f in rows]  # fmt: skip

    def ack(self, readings: list[Reading]) -> None:
        """The broker acknowledged these readings: delete them."""
        if not readings:
            return
        with self._transaction():
            cursor = self._db.executemany("DELETE FROM reading WHERE seq = ?",
                                          [(r.seq,) for r in readings])  # fmt: skip
            self._depth -= cursor.rowcount

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)

    def close(self) -> None:
        self._db.close()


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_: object) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")
