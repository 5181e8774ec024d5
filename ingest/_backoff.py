"""Exponential backoff with jitter: ingest's TSDB retries and the spool's replayer."""

from __future__ import annotations

import random


class Backoff:
    """Waits from ``min_s`` doubling up to ``max_s``, each drawn in [50 %, 100 %] of the
    current step, so that many clients retrying at once spread out."""

    def __init__(self, min_s: float, max_s: float) -> None:
        self.min_s = min_s
        self.max_s = max_s
        self.reset()

    def reset(self) -> None:
        self._delay = self.min_s

    def next(self) -> float:
        delay = self._delay * random.uniform(0.5, 1.0)
        self._delay = min(self._delay * 2, self.max_s)
        return delay
