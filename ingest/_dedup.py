"""De-duplication by (node, seq) with bounded memory, and refusal of reused seqs.

Per node, the seqs seen within the last ``window`` seqs of the highest one are remembered
with the sample time they carried. A seq seen again is:

- ``duplicate`` when it carries the same sample time: a QoS 1 redelivery or an outbox resend,
  which is normal and dropped quietly (counted);
- ``seq_reused`` when it carries another sample time: the node's counter went back (a replaced
  outbox file) or someone replays old seqs with new data. Refused, so that a forged or
  rewound reading cannot take the place of the one stored under that seq;
- ``seq_rewound`` when it is at or below ``highest - window``: nothing that far back can be
  a redelivery (the outbox sends in seq order), so the counter went back by more than the
  window. Refused.

A seq not seen before below the highest is a late reading filling a gap, and is accepted.
"""

from __future__ import annotations

ANY_TIME = -(2**63)  # a seq remembered without its sample time (``SeqWindow.remember``)
DUPLICATE = "duplicate"
SEQ_REUSED = "seq_reused"
SEQ_REWOUND = "seq_rewound"


class SeqWindow:
    def __init__(self, window: int = 65536) -> None:
        self.window = window
        self._highest: dict[str, int] = {}
        self._seen: dict[str, dict[int, int]] = {}  # node -> seq -> sample time (ms)
        self.gaps = 0  # seqs skipped when a node's highest seq jumped

    def accept(self, node: str, seq: int, ts_ms: int) -> str | None:
        """None if the reading is new (and remember it), else ``duplicate``, ``seq_reused``
        or ``seq_rewound``."""
        highest = self._highest.get(node, -1)
        seen = self._seen.get(node)
        if seen is None:  # (setdefault would build a dict on every call)
            seen = self._seen[node] = {}
        if seq <= highest - self.window:
            return SEQ_REWOUND
        # The sample time tells a resend from a reuse: the edge stamps a seq once, and
        # a replay under a used seq with the same time but another value is dropped as a
        # duplicate: either way the reading stored first under that seq stays.
        known = seen.get(seq)
        if known is not None:
            return DUPLICATE if known in (ts_ms, ANY_TIME) else SEQ_REUSED
        seen[seq] = ts_ms
        if seq > highest + 1 and highest >= 0:
            self.gaps += seq - highest - 1  # messages lost on the way (or still to come late)
        if seq > highest:
            self._highest[node] = seq
            if len(seen) > 2 * self.window:
                floor = seq - self.window
                self._seen[node] = {s: f for s, f in seen.items() if s > floor}
        return None

    def remember(self, node: str, seq: int) -> None:
        """Mark ``seq`` of ``node`` as seen, its sample time unknown: a reading under it is
        then a duplicate whatever its time (a redelivery of what a previous process took)."""
        self.accept(node, seq, ANY_TIME)  # one already seen keeps its time
