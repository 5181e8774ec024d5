"""A full run with known secrets, then a grep of every log it produced: captured logging of
every library at DEBUG, the broker's and InfluxDB's log files, the quarantine file and the
commands' output. No password, token, webhook secret, access password or private key may
appear in any of them.

The run: ``tianwang broker-config`` (MQTT passwords, a TLS key), an edge agent over TLS
with its password file, ingest with its account, an HJ 212 logger with its access password
(one good packet, one with a bad CRC), a notice to an officer by MQTT and by signed webhook,
and the officer API: a failed and a good login, the token used, logout."""

from __future__ import annotations

import asyncio
import hmac
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from detect import Detector
from edge import EdgeAgent, load_agent_config
from edge._hj212_bridge import Hj212Bridge
from grid import MqttChannel, Notifier, WebhookChannel, sign
from ingest import InfluxV1Sink, IngestService
from tests.edge.test_hj212_bridge import packet
from tests.grid.test_api import PASSWORD, VILLAGE, _build, _hashed
from tests.grid.test_notify import _notice, _officer
from tests.helpers import ConstantDriver
from tests.test_secured_pipeline import (
    T0,
    Broker,
    _ignore,
    _ingest_config,
    _node_config,
    secured_broker,
)
from tianwang.broker_security import GRID_USER
from tianwang.clock import AcceleratedClock
from tianwang.mqtt import MqttLink
from tianwang.registry import Registry
from tianwang.services import InfluxDB

WEBHOOK_SECRET = "whsec-7f3a9c-never-log-me"
HJ212_PASSWORD = "hj212-pw-4821"
WRONG_PASSWORD = "a-wrong-guess-9921"


class Hook:
    def __init__(self) -> None:
        self.verified: list[bool] = []
        self.url = ""


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    with secured_broker(tmp_path) as started:
        yield started


@pytest.fixture
def hook() -> Iterator[Hook]:
    state = Hook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            given = self.headers.get("X-Tianwang-Signature", "")
            state.verified.append(hmac.compare_digest(sign(body, WEBHOOK_SECRET), given))
            self.send_response(200 if state.verified[-1] else 401)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


async def _hj212_logger() -> Hj212Bridge:
    mn = "LD130133000015"
    async with Hj212Bridge(host="127.0.0.1", port=0, allowed_mn=[mn],
                           password=HJ212_PASSWORD) as bridge:  # fmt: skip
        _, writer = await asyncio.open_connection("127.0.0.1", bridge.port)
        cp = "DataTime=20240101120000;a34004-Rtd=35,a34004-Flag=N"
        good = packet("2011", cp, qn="20240101120000001", mn=mn, pw=HJ212_PASSWORD)
        bad_crc = packet("2011", cp, qn="20240101120100002", mn=mn, pw=HJ212_PASSWORD)
        for frame in (bad_crc[:-6] + b"0000\r\n", good):
            writer.write(frame)
            await writer.drain()
        async with asyncio.timeout(10):
            while bridge.stats.packets + sum(bridge.rejections.values()) < 2:
                await asyncio.sleep(0.02)
        writer.close()
        await writer.wait_closed()
    return bridge


async def _run(tmp_path: Path, broker: Broker, influx: InfluxDB, county: Registry,
               hook: Hook) -> None:  # fmt: skip
    agent = EdgeAgent(load_agent_config(_node_config(tmp_path, broker)), [ConstantDriver()],
                      AcceleratedClock(T0, 1e5))  # fmt: skip
    config = _ingest_config(broker, quarantine_path=tmp_path / "quarantine.jsonl")
    async with InfluxV1Sink(influx.url) as sink, IngestService(config, county, Detector(), sink,
                                                               _ignore) as ingest:  # fmt: skip
        stats = await agent.run(T0, T0 + 10 * 60)
        assert await ingest.wait_for_readings(stats.readings_published, timeout_s=30)
    bridge = await _hj212_logger()
    assert bridge.rejections["crc"] == 1
    async with MqttLink(broker.address(GRID_USER), "tianwang-grid") as link:
        notifier = Notifier([MqttChannel(link, "yiyuan"),
                             WebhookChannel(lambda _officer_id: WEBHOOK_SECRET)])  # fmt: skip
        deliveries = await notifier.send(_notice(_officer(webhook=hook.url)))
    assert [d.status for d in deliveries] == ["sent", "sent"] and hook.verified == [True]


def _api_flow(tmp_path: Path) -> list[str]:
    """The officer API's part; returns the tokens it handed out."""
    (tmp_path / "api").mkdir()
    api = _build(tmp_path / "api", {VILLAGE: _hashed()})
    try:
        refused = api.client.post("/v1/login", json={"officer_id": VILLAGE,
                                                     "password": WRONG_PASSWORD})  # fmt: skip
        assert refused.status_code == 401
        login = api.client.post("/v1/login", json={"officer_id": VILLAGE, "password": PASSWORD})
        token = login.json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        assert api.client.get("/v1/incidents", headers=headers).status_code == 200
        assert api.client.post("/v1/logout", headers=headers).status_code == 204
        assert api.client.get("/v1/me", headers=headers).status_code == 401
        return [token, api.tokens.issue(VILLAGE).token]
    finally:
        api.client.close()
        api.store.close()


def _secrets(broker: Broker, tokens: list[str]) -> dict[str, str]:
    found = {f"mqtt password of {p.stem}": p.read_text().strip()
             for p in (broker.out / "credentials").glob("*.password")}  # fmt: skip
    key_lines = (broker.out / "tls" / "server.key").read_text().splitlines()[1:-1]
    found |= {f"TLS key line {i}": line for i, line in enumerate(key_lines) if len(line) > 20}
    found |= {f"token {i}": t for i, t in enumerate(tokens)}
    return found | {"officer password": PASSWORD, "wrong password": WRONG_PASSWORD,
                    "webhook secret": WEBHOOK_SECRET, "HJ 212 PW": HJ212_PASSWORD}  # fmt: skip


def test_no_secret_is_written_to_any_log(
    tmp_path: Path,
    broker: Broker,
    influxdb: InfluxDB,
    county: Registry,
    hook: Hook,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, every library
    asyncio.run(_run(tmp_path, broker, influxdb, county, hook))
    tokens = _api_flow(tmp_path)
    out = capsys.readouterr()
    logs = {
        "captured logging": caplog.text,
        "stdout and stderr": out.out + out.err,
        "mosquitto.log": (broker.process.root / "mosquitto.log").read_text(),
        "influxdb.log": (influxdb.root / "influxdb.log").read_text(),
        "quarantine.jsonl": (tmp_path / "quarantine.jsonl").read_text()
        if (tmp_path / "quarantine.jsonl").exists() else "",
    }  # fmt: skip
    # the grep is not vacuous: the run logged, and logged what it did
    assert len(caplog.records) > 50
    assert "u'yy-0001'" in logs["mosquitto.log"] and "u'tianwang-ingest'" in logs["mosquitto.log"]
    assert "packet rejected, crc" in caplog.text
    leaks = [(what, where) for what, secret in _secrets(broker, tokens).items()
             for where, text in logs.items() if secret in text]  # fmt: skip
    assert leaks == []
    assert "PW=***" in caplog.text  # the rejected packet's preview, redacted
