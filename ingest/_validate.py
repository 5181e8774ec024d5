"""Validation of a data message against the topic scheme, the registry and the quantity table.

Every rejection has a reason code; the service counts them and quarantines the payload.
"""

from __future__ import annotations

import math

from tianwang.codec import PayloadError, Reading, decode_data
from tianwang.quantities import QuantityTable
from tianwang.registry import Node, Registry
from tianwang.topics import TopicError, parse_topic


class MessageValidator:
    def __init__(self, registry: Registry, quantities: QuantityTable) -> None:
        self.registry = registry
        self.quantities = quantities

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

    def reading(self, node: Node, reading: Reading) -> tuple[Reading | None, str | None]:
        """Check one reading; returns it (unit made canonical) or a reason code."""
        quantity = self.quantities.quantities.get(reading.quantity)
        if quantity is None or reading.quantity not in node.quantities:
            return None, "unknown_quantity"
        unit = self.quantities.canonical_unit(reading.unit)
        if unit != quantity.unit:
            return None, "wrong_unit"
        value = reading.value
        if not math.isnan(value) and not quantity.min <= value <= quantity.max:
            return None, "implausible"
        return (reading._replace(unit=unit) if unit != reading.unit else reading), None
