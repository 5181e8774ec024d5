"""The codec against a message published by mosquitto_pub, a client nobody here wrote."""

from __future__ import annotations

import asyncio
import subprocess

from tianwang.codec import Reading, decode_data, encode_data
from tianwang.mqtt import BrokerAddress, MqttLink
from tianwang.services import Mosquitto

TOPIC = "tw/v1/yiyuan/nanma/dongli/yy-0001/data"
# Written by hand from docs/protocol.md, as a third-party integrator would.
PAYLOAD = (
    '{"v": 1, "node": "yy-0001", "readings": ['
    '{"seq": 41, "ts": "2026-11-27T16:05:00+08:00", "quantity": "NO2", "value": 212.5,'
    ' "unit": "µg/m³", "flag": "N"},'
    '{"seq": 42, "ts": "2026-11-27T08:05:00Z", "quantity": "CO", "value": null,'
    ' "unit": "mg/m3", "flag": "D"}]}'
)


async def _receive_one(broker: Mosquitto) -> tuple[str, bytes]:
    address = BrokerAddress.parse(broker.url)
    async with MqttLink(address, "test-codec-sub") as link:
        await link.subscribe("tw/v1/#", qos=1)
        publish = await asyncio.create_subprocess_exec(
            "mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-q", "1",
            "-t", TOPIC, "-m", PAYLOAD,
        )  # fmt: skip
        assert await publish.wait() == 0
        async with asyncio.timeout(10):
            async for topic, payload in link.messages():
                return topic, payload
    raise AssertionError("no message")


def test_decodes_a_message_from_mosquitto_pub(mosquitto: Mosquitto) -> None:
    topic, payload = asyncio.run(_receive_one(mosquitto))
    assert topic == TOPIC
    node, readings = decode_data(payload)
    assert node == "yy-0001"
    first, second = readings
    assert (first.seq, first.quantity, first.value, first.unit, first.flag) == (
        41, "NO2", 212.5, "µg/m³", "N",
    )  # fmt: skip
    # 16:05 in Shanghai is 08:05 UTC: both readings carry the same instant.
    assert first.ts_ms == second.ts_ms == 1795766700000
    assert second.quantity == "CO" and second.flag == "D"
    assert second.value != second.value  # null -> NaN


def test_mosquitto_sub_receives_what_the_codec_encodes(mosquitto: Mosquitto) -> None:
    reading = Reading("yy-0002", 7, 1795766700000, "SO2", 18.25, "ug/m3", "N")
    topic = TOPIC.replace("yy-0001", "yy-0002")

    async def publish() -> None:
        # Retained, so mosquitto_sub gets it whenever it subscribes: no timing guess.
        async with MqttLink(BrokerAddress.parse(mosquitto.url), "test-codec-pub") as link:
            await link.publish(topic, encode_data("yy-0002", [reading]), retain=True)

    asyncio.run(publish())
    out = subprocess.run(
        ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(mosquitto.port), "-q", "1",
         "-t", "tw/v1/#", "-C", "1", "-W", "10"],
        capture_output=True, check=True, timeout=15,
    ).stdout  # fmt: skip
    assert decode_data(out.strip()) == ("yy-0002", [reading])
