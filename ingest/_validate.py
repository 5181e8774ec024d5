"""Validation of a data message against the topic scheme, the registry and the quantity table.

Every rejection has a reason code; the service counts them and quarantines the payload.
"""

from __future__ import annotations

import math

from tianwang.codec import PayloadError, Reading, decode_data
from tianwang.quantities import QuantityTable, UnitError
from tianwang.registry import Node, Registry
from tianwang.topics import TopicError, parse_topic


class MessageValidator:
    """``max_future_s`` / ``max_age_s``: a reading stamped further ahead of the time given
    to ``reading`` than that, or older, is rejected (``future``, ``stale``); None: no check."""

    def __init__(self, registry: Registry, quantities: QuantityTable,
                 max_future_s: float | None = 300.0,
                 max_age_s: float | None = 30 * 86400.0) -> None:  # fmt: skip
        self.registry = registry
        self.quantities = quantities
        self.max_future_ms = None if max_future_s is None else max_future_s * 1000
        self.max_age_ms = None if max_age_s is None else max_age_s * 1000

    def message(self, topic: str, payload: bytes) -> tuple[Node, list[Reading]]:
        """Decode and check a whole message; raises PayloadError if it must be rejected whole."""
        try:
            place, kind = parse_topic(topic)
        except TopicError as exc:
            raise PayloadError("bad_topic", str(exc)) from exc
        if kind != "data":
            raise PayloadError("bad_topic", f"not a data topic: {topic!r}")
        node_id, readings = decode_data(payload)
        node = self.registry.nodes.get(node_id)
        if node is None:
            raise PayloadError("unknown_node", f"node {node_id!r} is not registered")
        if place != node.place:
            # A node publishing on another node's path, or a stale path: a security event.
            raise PayloadError("topic_mismatch", f"node {node_id!r} published on {topic!r}")
        return node, readings

    def reading(self, node: Node, reading: Reading, now_ms: float | None = None
                ) -> tuple[Reading | None, str | None]:  # fmt: skip
        """Check one reading; returns it (in the canonical unit) or a reason code."""
        quantity = self.quantities.quantities.get(reading.quantity)
        if quantity is None or reading.quantity not in node.quantities:
            return None, "unknown_quantity"
        if reading.unit != quantity.unit:
            try:  # a known unit is converted (edges should have, BRIEF); others are refused
                factor = self.quantities.factor(reading.quantity, reading.unit)
            except UnitError:
                return None, "wrong_unit"
            reading = reading._replace(unit=quantity.unit, value=reading.value * factor)
        value = reading.value
        if not math.isnan(value) and not quantity.min <= value <= quantity.max:
            return None, "implausible"
        if now_ms is not None:
            if self.max_future_ms is not None and reading.ts_ms > now_ms + self.max_future_ms:
                return None, "future"
            if self.max_age_ms is not None and reading.ts_ms < now_ms - self.max_age_ms:
                return None, "stale"
        return reading, None
