"""Quarantine: the raw payload of every rejection, bounded, for an operator to inspect.

The latest ``keep`` rejections stay in memory (``recent``); with a ``path`` each is also
appended to a JSON-lines file, rotated to ``<path>.1`` when it passes ``max_bytes`` (so at
most about twice that on disk). Payloads are stored base64 encoded: they may not be text.
"""

from __future__ import annotations

import base64
import time
from collections import deque
from pathlib import Path
from typing import NamedTuple

import orjson

PAYLOAD_MAX = 65536  # bytes of a rejected payload that are kept


class Rejected(NamedTuple):
    reason: str
    topic: str
    payload: bytes  # at most PAYLOAD_MAX bytes of it once quarantined
    detail: str


class Quarantine:
    def __init__(self, path: Path | None = None, max_bytes: int = 16 << 20,
                 keep: int = 1000) -> None:  # fmt: skip
        self.path = path
        self.max_bytes = max_bytes
        self.recent: deque[Rejected] = deque(maxlen=keep)
        self.rotations = 0
        self._file = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = path.open("ab")

    def add(self, rejected: Rejected) -> None:
        # memory is bounded too: the latest ``keep`` payloads, each cut at PAYLOAD_MAX bytes
        kept = rejected._replace(payload=rejected.payload[:PAYLOAD_MAX])
        self.recent.append(kept)
        if self._file is None:
            return
        line = orjson.dumps({
            "t": round(time.time(), 3), "reason": rejected.reason, "topic": rejected.topic,
            "detail": rejected.detail, "payload_b64": base64.b64encode(kept.payload).decode(),
        }) + b"\n"  # fmt: skip
        if self._file.tell() + len(line) > self.max_bytes:
            self._rotate()
        self._file.write(line)
        self._file.flush()

    def _rotate(self) -> None:
        assert self._file is not None and self.path is not None
        self._file.close()
        self.path.replace(self.path.with_name(self.path.name + ".1"))
        self._file = self.path.open("ab")
        self.rotations += 1

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
