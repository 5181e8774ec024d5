"""Helpers shared by the tests that run edge agents on a real broker."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

from edge import SensorValue
from tianwang.aio import cancel_and_wait
from tianwang.codec import Reading, decode_data
from tianwang.mqtt import BrokerAddress, MqttLink
from tianwang.services import Mosquitto

TIMEOUT_S = 8.0


class ConstantDriver:
    """NO2 40 ug/m3 and CO 0.5 mg/m3, every time."""

    async def read(self, sample_time: float) -> list[SensorValue]:
        return [SensorValue("NO2", 40.0, "ug/m3", "N"), SensorValue("CO", 0.5, "mg/m3", "N")]


class Recorder:
    """A plain subscriber that keeps every message with its arrival time."""

    def __init__(self, link: MqttLink) -> None:
        self.link = link
        self.messages: list[tuple[float, str, bytes]] = []
        self._changed = asyncio.Event()

    async def collect(self) -> None:
        async for topic, payload in self.link.messages():
            self.messages.append((time.monotonic(), topic, payload))
            self._changed.set()

    def payloads(self, topic: str) -> list[bytes]:
        return [p for _, t, p in self.messages if t == topic]

    def batches(self) -> list[list[Reading]]:
        return [decode_data(p)[1] for _, _, p in self.messages]

    def readings(self) -> list[Reading]:
        return [r for batch in self.batches() for r in batch]

    async def wait_until(self, done: Callable[[], bool], what: str) -> None:
        try:
            async with asyncio.timeout(TIMEOUT_S):
                while True:
                    self._changed.clear()
                    if done():
                        return
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"timed out waiting for {what}") from None


@contextlib.asynccontextmanager
async def listening(link: MqttLink, *filters: str) -> AsyncIterator[Recorder]:
    """``link`` connected and subscribed to ``filters``, its messages recorded."""
    async with link:
        for topic_filter in filters:
            await link.subscribe(topic_filter)
        recorder = Recorder(link)
        task = asyncio.create_task(recorder.collect())
        try:
            yield recorder
        finally:
            await cancel_and_wait(task)


def recording(broker: Mosquitto, *topics: str) -> contextlib.AbstractAsyncContextManager[Recorder]:
    return listening(MqttLink(BrokerAddress.parse(broker.url), "test-recorder"), *topics)
