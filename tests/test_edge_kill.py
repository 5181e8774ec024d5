"""kill -9 of a running edge agent loses nothing: after a restart the receiver has every seq,
exactly once after de-duplication, with no gap (real Mosquitto, a real agent process)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import yaml

from edge import Outbox
from tests.conftest import EXAMPLES
from tianwang.mqtt import BrokerAddress, MqttLink
from tianwang.services import Mosquitto

NODE = "yy-0001"
TOPIC = "tw/v1/yiyuan/nanma/dongli/yy-0001/data"


def write_config(tmp_path: Path, broker: Mosquitto) -> Path:
    config = {
        "node": NODE,
        "place": {"county": "yiyuan", "township": "nanma", "village": "dongli"},
        "broker": {"url": broker.url},
        "sampling_s": 0.1,
        "health_s": 3600,
        "drivers": {"sim": {"kind": "simulated", "grid": str(EXAMPLES / "county.yaml"),
                            "scenario": str(EXAMPLES / "scenarios" / "demo.yaml")}},
        "sensors": [{"driver": "sim", "quantity": q, "unit": u}
                    for q, u in (("NO2", "ug/m3"), ("SO2", "ug/m3"), ("CO", "mg/m3"))],
        "outbox": {"path": "outbox.sqlite"},
    }  # fmt: skip
    path = tmp_path / "node.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def start_agent(config: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tianwang.cli", "edge", "run", "--config", str(config)],
        stdin=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


async def until_count(received: list[int], count: int, timeout_s: float = 30) -> None:
    """Until ``count`` distinct seqs arrived (redeliveries after the kill do not count)."""
    async with asyncio.timeout(timeout_s):
        while len(set(received)) < count:
            await asyncio.sleep(0.02)


async def scenario(tmp_path: Path, broker: Mosquitto) -> tuple[list[int], int]:
    from tianwang.codec import decode_data

    config = write_config(tmp_path, broker)
    received: list[int] = []
    address = BrokerAddress.parse(broker.url)
    async with MqttLink(address, "test-receiver", session_expiry_s=600) as link:
        await link.subscribe(TOPIC, qos=1)

        async def collect() -> None:
            async for _, payload in link.messages():
                received.extend(r.seq for r in decode_data(payload)[1])

        collector = asyncio.create_task(collect())
        agent = start_agent(config)
        await until_count(received, 60)
        agent.send_signal(signal.SIGKILL)  # mid-stream, no goodbye
        assert agent.wait(timeout=10) == -signal.SIGKILL
        seen_before_restart = len(set(received))
        agent = start_agent(config)
        await until_count(received, seen_before_restart + 60)
        agent.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.to_thread(agent.communicate, timeout=30)
        assert agent.returncode == 0, stderr.decode()[-2000:]
        outbox = Outbox(tmp_path / "outbox.sqlite", NODE)
        assert len(outbox) == 0  # a clean stop delivers the outbox
        issued = outbox.next_seq
        outbox.close()
        await until_count(received, issued)
        collector.cancel()
    return received, issued


def test_kill_9_loses_and_doubles_nothing(tmp_path: Path, mosquitto: Mosquitto) -> None:
    received, issued = asyncio.run(scenario(tmp_path, mosquitto))
    assert issued >= 120
    assert sorted(set(received)) == list(range(issued))  # every seq, no gap
    # Redelivery of what was in flight at the kill is allowed; de-duplication removes it.
    assert len(received) - len(set(received)) <= 10
