"""Topic scheme v1: ``tw/v1/<county>/<township>/<village>/<node>/<kind>``.

The place path is in the topic so that a broker ACL can pin a node to its own topics and
ingest workers can partition the load by county (docs/protocol.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

PREFIX: Final = "tw/v1"
KINDS: Final = frozenset({"data", "status", "cfg", "cfg_ack", "health"})
DATA_FILTER: Final = f"{PREFIX}/+/+/+/+/data"
STATUS_FILTER: Final = f"{PREFIX}/+/+/+/+/status"
HEALTH_FILTER: Final = f"{PREFIX}/+/+/+/+/health"


class TopicError(ValueError):
    """A topic that is not a v1 tianwang topic."""


@dataclass(frozen=True, slots=True)
class NodeTopic:
    """The place path of one node, from which all of its topics are derived."""

    county: str
    township: str
    village: str
    node: str

    def topic(self, kind: str) -> str:
        if kind not in KINDS:
            raise TopicError(f"unknown topic kind {kind!r}")
        return f"{PREFIX}/{self.county}/{self.township}/{self.village}/{self.node}/{kind}"


def parse_topic(topic: str) -> tuple[NodeTopic, str]:
    """Split a v1 topic into the node's place path and the kind."""
    parts = topic.split("/")
    if len(parts) != 7 or f"{parts[0]}/{parts[1]}" != PREFIX:
        raise TopicError(f"not a {PREFIX} topic: {topic!r}")
    if parts[6] not in KINDS:
        raise TopicError(f"unknown topic kind {parts[6]!r} in {topic!r}")
    if any(not p for p in parts[2:6]):
        raise TopicError(f"empty level in {topic!r}")
    return NodeTopic(parts[2], parts[3], parts[4], parts[5]), parts[6]


def county_filter(county: str, kind: str = "data") -> str:
    """Subscription filter for one county: how ingest workers split the load."""
    return f"{PREFIX}/{county}/+/+/+/{kind}"


def alert_topic(county: str, officer_id: str) -> str:
    """Where an officer's phone app subscribes. Not a node topic (5 levels, not 7): no node
    filter matches it, and the broker ACL gives each officer this one topic to read."""
    return f"{PREFIX}/{county}/_alerts/{officer_id}"
