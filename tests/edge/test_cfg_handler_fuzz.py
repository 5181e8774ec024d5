"""Fuzzing the edge agent's cfg topic handler (EdgeAgent._apply_cfg), what a retained cfg on
the broker reaches: any payload is applied whole or refused, never raises, always gets one
cfg_ack that matches the published schema with a bounded reason, leaves valid settings, and
a 1 MB payload is refused in bounded memory. The parser alone is fuzzed in
test_remote_config.py; here it is the handler around it, with an in-memory link that
records what the agent publishes."""

from __future__ import annotations

import asyncio
import tracemalloc

import jsonschema
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge import AgentConfig, EdgeAgent, Settings
from edge._remote import MAX_BYTES
from tests.edge.test_remote_config import JSON, JSON_KEYS
from tests.helpers import ConstantDriver
from tianwang.clock import AcceleratedClock
from tianwang.codec import schema
from tianwang.mqtt import BrokerAddress
from tianwang.topics import NodeTopic

PLACE = NodeTopic("yiyuan", "nanma", "dongli", "yy-0001")
ACK_SCHEMA = jsonschema.Draft202012Validator(schema("cfg_ack-v1"))
MB = 1 << 20


class RecordingLink:
    """The part of MqttLink the handler uses: publish, recorded."""

    def __init__(self) -> None:
        self.published: list[tuple[str, bytes]] = []

    async def publish(self, topic: str, payload: bytes, *, qos: int = 1,
                      retain: bool = False) -> None:  # fmt: skip
        self.published.append((topic, payload))


def _agent() -> EdgeAgent:
    config = AgentConfig(PLACE, BrokerAddress("127.0.0.1", 9), Settings(sampling_s=60.0))
    return EdgeAgent(config, [ConstantDriver()], AcceleratedClock(1795766400.0, 1.0))


def _handle(agent: EdgeAgent, payload: bytes) -> list[tuple[str, bytes]]:
    link = RecordingLink()
    asyncio.run(agent._apply_cfg(link, payload))  # type: ignore[arg-type]
    return link.published


payloads = st.one_of(
    st.binary(max_size=300),
    st.dictionaries(JSON_KEYS, JSON, max_size=6).map(orjson.dumps),
    st.dictionaries(st.sampled_from(["sampling_s", "calibration", "precheck"]), JSON,
                    max_size=3).map(lambda d: orjson.dumps({"v": 1, "id": "f", **d})),
)  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payloads)
def test_any_cfg_payload_is_applied_or_refused_with_one_valid_ack(payload: bytes) -> None:
    agent = _agent()
    before = agent.stats.cfg_applied + agent.stats.cfg_rejected
    [(topic, ack)] = _handle(agent, payload)
    assert topic == PLACE.topic("cfg_ack")
    doc = orjson.loads(ack)
    ACK_SCHEMA.validate(doc)
    assert doc["node"] == "yy-0001"
    assert doc["reason"] is None or 0 < len(doc["reason"]) <= MAX_BYTES + 100
    assert (doc["status"] == "applied") == (doc["reason"] is None)
    assert agent.stats.cfg_applied + agent.stats.cfg_rejected == before + 1
    assert 0.1 <= agent.settings.sampling_s <= 3600
    if doc["status"] == "rejected":
        assert agent.settings == Settings(sampling_s=60.0) and agent.cfg_id is None


def test_a_1mb_cfg_is_refused_in_bounded_memory() -> None:
    agent = _agent()
    huge = b'{"v": 1, "id": "big", "calibration": {' + b'"NO2": {"gain": 1.0},' * 50_000 + b"}}"
    assert len(huge) > MB
    tracemalloc.start()
    try:
        [(_, ack)] = _handle(agent, huge)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert orjson.loads(ack)["status"] == "rejected" and "bytes" in orjson.loads(ack)["reason"]
    assert peak < 4 * MB  # the payload is refused by its size, before it is parsed


def test_the_same_cfg_again_is_acknowledged_once() -> None:
    agent = _agent()
    payload = orjson.dumps({"v": 1, "id": "c-1", "sampling_s": 30})
    assert len(_handle(agent, payload)) == 1 and agent.settings.sampling_s == 30.0
    assert _handle(agent, payload) == []  # the retained copy after a reconnect
