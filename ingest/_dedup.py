"""De-duplication by (node, seq) with bounded memory.

Per node, the seqs seen within the last ``window`` seqs of the highest one are remembered;
a seq at or below ``highest - window`` is treated as already seen (QoS 1 redelivery or an
outbox replay that came far too late) and counted as too old.
"""

from __future__ import annotations


class SeqWindow:
    def __init__(self, window: int = 65536) -> None:
        self.window = window
        self._highest: dict[str, int] = {}
        self._seen: dict[str, set[int]] = {}
        self.gaps = 0  # seqs skipped when a node's highest seq jumped

    def accept(self, node: str, seq: int) -> str | None:
        """None if the reading is new (and remember it), else ``duplicate`` or ``too_old``."""
        highest = self._highest.get(node, -1)
        seen = self._seen.get(node)
        if seen is None:  # (setdefault would build a set on every call)
            seen = self._seen[node] = set()
        if seq <= highest - self.window:
            return "too_old"
        if seq in seen:
            return "duplicate"
        seen.add(seq)
        if seq > highest + 1 and highest >= 0:
            self.gaps += seq - highest - 1  # messages lost on the way (or still to come late)
        if seq > highest:
            self._highest[node] = seq
            if len(seen) > 2 * self.window:
                floor = seq - self.window
                self._seen[node] = {s for s in seen if s > floor}
        return None
