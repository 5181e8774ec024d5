"""The pipeline through a broker set up by ``tianwang broker-config``: an edge agent with its
provisioned credentials over TLS, ingest with its own account on the loopback listener,
InfluxDB; and replayed or rewound seqs, which ingest refuses with a reason code and counts."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from detect import Detector
from edge import EdgeAgent, load_agent_config
from ingest import InfluxV1Sink, IngestConfig, IngestService, stored_readings
from ingest._readback import StoredReading
from tests.helpers import ConstantDriver
from tianwang.broker_security import INGEST_USER
from tianwang.cli import main
from tianwang.clock import AcceleratedClock
from tianwang.codec import Reading, encode_data
from tianwang.mqtt import BrokerAddress, MqttLink, TlsFiles
from tianwang.registry import Registry
from tianwang.services import ConfiguredMosquitto, InfluxDB, free_port

ROOT = Path(__file__).resolve().parent.parent
T0 = 1795766400.0
NODE = "yy-0001"


@dataclass
class Broker:
    process: ConfiguredMosquitto
    out: Path
    plain_port: int
    tls_port: int

    def password_file(self, user: str) -> Path:
        return self.out / "credentials" / f"{user}.password"

    def address(self, user: str, *, tls: bool = False) -> BrokerAddress:
        password = self.password_file(user).read_text().strip()
        return BrokerAddress("127.0.0.1", self.tls_port if tls else self.plain_port, user,
                             password)  # fmt: skip

    @property
    def ca(self) -> Path:
        return self.out / "tls" / "ca.crt"


@contextlib.contextmanager
def secured_broker(tmp_path: Path) -> Iterator[Broker]:
    """``tianwang broker-config`` for the example county, and Mosquitto run with it."""
    out, plain, tls = tmp_path / "broker", free_port(), free_port()
    code = main(["broker-config", "--grid", str(ROOT / "examples" / "county.yaml"),
                 "--out", str(out), "--listen", f"127.0.0.1:{plain}",
                 "--tls-listen", f"127.0.0.1:{tls}", "--tls-self-signed", "127.0.0.1,localhost",
                 "--run-as", getpass.getuser(), "--data", str(tmp_path / "data")])  # fmt: skip
    assert code == 0, "tianwang broker-config failed (its stderr is captured)"
    with ConfiguredMosquitto(tmp_path / "mosquitto", out / "mosquitto.conf", plain) as process:
        yield Broker(process, out, plain, tls)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    with secured_broker(tmp_path) as started:
        yield started


async def _ignore(events: list[object]) -> None:
    return None


def _ingest_config(broker: Broker, **options: object) -> IngestConfig:
    return IngestConfig(broker.address(INGEST_USER), flush_interval_s=0.05, max_future_s=None,
                        max_age_s=None, **options)  # type: ignore[arg-type]  # fmt: skip


def _node_config(tmp_path: Path, broker: Broker) -> Path:
    """The agent configuration a provisioned node gets: its user, password file and CA."""
    path = tmp_path / "node" / "node.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump({
        "node": NODE, "place": {"county": "yiyuan", "township": "nanma", "village": "dongli"},
        "broker": {"url": f"mqtts://127.0.0.1:{broker.tls_port}", "username": NODE,
                   "password_file": str(broker.password_file(NODE)),
                   "tls": {"ca": str(broker.ca)}},
        "sampling_s": 60,
        "drivers": {"const": {"kind": "simulated"}},
        "sensors": [{"driver": "const", "quantity": "NO2", "unit": "ug/m3"},
                    {"driver": "const", "quantity": "CO", "unit": "mg/m3"}],
        "outbox": {"path": "outbox.sqlite"},
    }))  # fmt: skip
    return path


async def _edge_to_influx(
    tmp_path: Path, broker: Broker, influx: InfluxDB, county: Registry
) -> tuple[int, IngestService, list[StoredReading]]:
    config = load_agent_config(_node_config(tmp_path, broker))
    assert config.broker.password and config.tls is not None  # read from the provisioned files
    agent = EdgeAgent(config, [ConstantDriver()], AcceleratedClock(T0, 1e5))
    async with InfluxV1Sink(influx.url) as sink:
        async with IngestService(_ingest_config(broker), county, Detector(), sink,
                                 _ignore) as ingest:  # fmt: skip
            stats = await agent.run(T0, T0 + 30 * 60)
            assert await ingest.wait_for_readings(stats.readings_published, timeout_s=30)
        stored = await stored_readings(sink, NODE)
    return stats.readings_published, ingest, stored


def test_an_edge_agent_publishes_through_the_secured_broker_into_influxdb(
    tmp_path: Path, broker: Broker, influxdb: InfluxDB, county: Registry
) -> None:
    published, ingest, stored = asyncio.run(_edge_to_influx(tmp_path, broker, influxdb, county))
    assert published == 60  # 30 samples of NO2 and CO
    assert sorted(r.seq for r in stored) == list(range(60))
    assert ingest.counts["stored"] == 60 and dict(ingest.rejections) == {}


# --- replayed and rewound seqs ----------------------------------------------------------------

WINDOW = 8  # seqs remembered per node, small so that a rewind past it is quick to make


def _message(seqs: range | list[int], *, shift_min: int = 0, value: float = 40.0) -> bytes:
    """NO2 readings of NODE; seq s sampled at minute s (+ shift_min)."""
    return encode_data(NODE, [Reading(NODE, s, int(T0 * 1000) + (s + shift_min) * 60_000, "NO2",
                                      value, "ug/m3", "N") for s in seqs])  # fmt: skip


FORGED = 999.0
MESSAGES = [
    (_message(range(4)), "4 new"),
    (_message(range(4)), "a redelivery: 4 duplicates"),
    (_message([0, 1], shift_min=500, value=FORGED), "a reset counter: 2 seq_reused"),
    (_message(range(4, 20)), "16 new, highest 19"),
    (_message([15], shift_min=500, value=FORGED), "reused again (15 > 19 - 8)"),
    (_message([11, 2], shift_min=900, value=FORGED), "at or below 19 - 8: 2 seq_rewound"),
    (_message([20]), "1 new"),
]
ACCEPTED, DUPLICATES = 21, 4
REFUSED = {"seq_reused": 3, "seq_rewound": 2}


async def _replays(broker: Broker, influx: InfluxDB,
                   county: Registry) -> tuple[IngestService, list[StoredReading]]:  # fmt: skip
    async with InfluxV1Sink(influx.url) as sink:
        config = _ingest_config(broker, seq_window=WINDOW)
        async with IngestService(config, county, Detector(), sink, _ignore) as ingest:
            # with the node's own credentials: a replay needs no forged identity
            link = MqttLink(broker.address(NODE, tls=True), "tw-edge-yy-0001",
                            tls=TlsFiles(broker.ca))  # fmt: skip
            async with link:
                for payload, _ in MESSAGES:
                    await link.publish(county.nodes[NODE].place.topic("data"), payload)
            settled = ACCEPTED + sum(REFUSED.values())
            assert await ingest.wait_for_readings(settled, timeout_s=30)
        stored = await stored_readings(sink, NODE)
    return ingest, stored


def _metric(ingest: IngestService, name: str) -> dict[str, float]:
    return {s.labels.get("reason") or s.labels.get("kind", ""): s.value
            for family in text_string_to_metric_families(ingest.metrics.text())
            for s in family.samples if s.name == name}  # fmt: skip


def test_replayed_and_rewound_seqs_are_refused_and_counted(
    broker: Broker, influxdb: InfluxDB, county: Registry
) -> None:
    ingest, stored = asyncio.run(_replays(broker, influxdb, county))
    assert dict(ingest.rejections) == REFUSED
    assert ingest.counts["duplicate"] == DUPLICATES
    assert ingest.counts["stored"] == ACCEPTED
    assert _metric(ingest, "tianwang_ingest_rejected_total") == REFUSED
    assert _metric(ingest, "tianwang_ingest_duplicates_total") == {"duplicate": DUPLICATES}
    # each refused message is quarantined once, naming its seqs
    details = sorted((r.reason, r.detail) for r in ingest.quarantine.recent)
    assert details == [("seq_reused", "1 readings, seq 15..15"),
                       ("seq_reused", "2 readings, seq 0..1"),
                       ("seq_rewound", "2 readings, seq 11..2")]  # fmt: skip
    # what is stored is the first sample of every seq, never a replayed value
    assert sorted(r.seq for r in stored) == list(range(21))
    assert not [r for r in stored if math.isclose(r.value or 0.0, FORGED)]
    assert {r.ts_ms for r in stored} == {int(T0 * 1000) + s * 60_000 for s in range(21)}
