"""The incident store's process killed while escalations are pending.

With SQLite the store lives in ``tianwang ingest``, which also runs the escalator: that
process is SIGKILLed a few seconds after the episode's incidents were created and their
first notices sent, while every escalation timer (15 s here) is still running, and started
again. Notices are counted on a real receiver, an MQTT subscriber of every officer's alert
topic: each assignment (created at the village, escalated to the township, then the county)
must arrive once, none twice, and the timers must carry on in the new process.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import orjson
import yaml

from firmware_sim.chaos._rig import ChaosResult
from firmware_sim.chaos._scenarios import COUNTY, Stage, run_pipeline
from grid import alert_topic
from tianwang.aio import cancel_and_wait
from tianwang.mqtt import BrokerAddress, MqttLink

ACK_WITHIN_MIN = 0.25  # 15 s per level: the kill and restart fit inside the first timer
NOTICES_TIMEOUT_S = 120.0
LEVELS_NODE = 3  # village, township, county (every cell of the episode has a holder)
LEVELS_TOWNSHIP = 2  # a township parent starts at the township


class AlertReceiver:
    """Every notice on every officer's alert topic, as (notice id, incident id, level)."""

    def __init__(self, link: MqttLink) -> None:
        self.link = link
        self.notices: list[tuple[int, int, str]] = []

    async def collect(self) -> None:
        async for _, payload in self.link.messages():
            body = orjson.loads(payload)
            self.notices.append((body["notice"], body["incident"]["id"],
                                 body["incident"]["level"]))  # fmt: skip

    def distinct(self) -> int:
        return len({n for n, _, _ in self.notices})


def _grid(folder: Path) -> Path:
    raw = yaml.safe_load(COUNTY.read_text())
    raw["escalation"] = {s: {"ack_within_min": ACK_WITHIN_MIN} for s in ("critical", "major")}
    path = folder / "county-fast-escalation.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False))
    return path


async def store_killed(folder: Path) -> ChaosResult:
    folder.mkdir(parents=True, exist_ok=True)
    grid = _grid(folder)
    county = yaml.safe_load(grid.read_text())["county"]["id"]
    receiver: AlertReceiver | None = None

    async def kill_while_pending(stage: Stage) -> None:
        nonlocal receiver
        address = BrokerAddress.parse(stage.broker.url)
        async with MqttLink(address, "chaos-alerts") as link:
            await link.subscribe(alert_topic(county, "+"), qos=1)
            receiver = AlertReceiver(link)
            task = asyncio.create_task(receiver.collect())
            try:
                await _wait(lambda: bool(receiver and receiver.notices), "a first notice")
                await asyncio.sleep(3.0)  # every "created" notice is out; timers are running
                stage.extra["notices_before_kill"] = len(receiver.notices)
                stage.ingest.kill()
                await asyncio.sleep(2.0)
                stage.ingest.start()
                await stage.until_simulated(1.0)  # the fleet is done: every incident exists
                store = stage.ingest.store()
                expected = sum(LEVELS_NODE if i.scope == "node" else LEVELS_TOWNSHIP
                               for i in store.all())  # fmt: skip
                stage.extra["notices_expected"] = expected
                await _wait(lambda: receiver is not None and receiver.distinct() >= expected,
                            f"{expected} notices", NOTICES_TIMEOUT_S)  # fmt: skip
                await asyncio.sleep(2.0)  # a repeat would come now
            finally:
                await cancel_and_wait(task)

    result = await run_pipeline("store_killed", folder, speed=600, grid=grid,
                                action=kill_while_pending,
                                ingest_args=["--escalation-tick-s", "1"])  # fmt: skip
    assert receiver is not None
    copies = Counter(n for n, _, _ in receiver.notices)
    result.extra["notices"] = receiver.distinct()
    result.extra["notices_duplicated"] = sum(c - 1 for c in copies.values())
    result.extra["escalations_missing"] = result.extra["notices_expected"] - receiver.distinct()
    result.extra["notices_by_level"] = dict(Counter(level for _, _, level in receiver.notices))
    return result


async def _wait(done: Callable[[], bool], what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)
