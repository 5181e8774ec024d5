"""Edge agent: runs on a node, samples its drivers, keeps an outbox, publishes over MQTT."""

from edge._agent import AgentConfig, AgentStats, EdgeAgent
from edge._driver import Driver, PushSource, Sample, SensorValue
from edge._outbox import MemoryOutbox

__all__ = [
    "AgentConfig",
    "AgentStats",
    "Driver",
    "EdgeAgent",
    "MemoryOutbox",
    "PushSource",
    "Sample",
    "SensorValue",
]
