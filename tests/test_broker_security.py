"""The broker configuration generated from the grid file, on a real private Mosquitto with a
plain loopback listener and a TLS listener: each node is pinned to its own topics, an
officer reads only their alert topic, ingest reads everything, nobody connects without a
password, a rotated password takes effect on SIGHUP, and TLS needs the right CA.

"Never arrives" is checked without sleeps: the forged messages go first, each acknowledged
by the broker, then a legitimate marker from the same client; Mosquitto handles one
client's packets in order, so once the marker has reached the full-rights subscriber, a
forged message that got through would already be there."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES
from tests.helpers import Recorder, listening
from tianwang.broker_security import (
    GRID_USER,
    INGEST_USER,
    NODE_READS,
    NODE_WRITES,
    OPERATOR_USER,
    BrokerConfigError,
    BrokerFiles,
    Listener,
    acl_text,
    broker_users,
    write_broker_config,
)
from tianwang.cli import main
from tianwang.mqtt import BrokerAddress, LinkError, MqttLink, TlsFiles
from tianwang.pki import ServerTls, issue_test_pki
from tianwang.registry import Registry, parse_registry
from tianwang.services import ConfiguredMosquitto, free_port
from tianwang.topics import alert_topic

A, B = "yy-0001", "yy-0002"  # two nodes of the same village
OFFICER_X, OFFICER_Y = "off-nanma-dongli", "off-nanma-xili"
ROTATION_TIMEOUT_S = 10.0


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> ServerTls:
    return issue_test_pki(tmp_path_factory.mktemp("pki"))


@dataclass
class Secured:
    broker: ConfiguredMosquitto
    files: BrokerFiles
    tls: ServerTls
    plain_port: int
    tls_port: int
    registry: Registry
    out: Path

    def password(self, user: str) -> str:
        return self.files.password_file(user).read_text("utf-8").strip()

    def address(self, user: str | None, password: str | None = None, *,
                tls: bool = False) -> BrokerAddress:  # fmt: skip
        secret = password if password is not None or user is None else self.password(user)
        return BrokerAddress("127.0.0.1", self.tls_port if tls else self.plain_port, user,
                             secret)  # fmt: skip

    def link(self, user: str | None, client_id: str, *, password: str | None = None,
             tls: bool = False, ca: Path | None = None) -> MqttLink:  # fmt: skip
        files = TlsFiles(ca or self.tls.ca) if tls else None
        return MqttLink(self.address(user, password, tls=tls), client_id, tls=files)

    def topic(self, node: str, kind: str) -> str:
        return self.registry.nodes[node].place.topic(kind)

    def regenerate(self, rotate: tuple[str, ...] = ()) -> BrokerFiles:
        self.files = write_broker_config(self.registry, self.out, self._listeners(),
                                         rotate=rotate, run_as=getpass.getuser())  # fmt: skip
        return self.files

    def _listeners(self) -> list[Listener]:
        return [Listener("127.0.0.1", self.plain_port),
                Listener("127.0.0.1", self.tls_port, self.tls)]  # fmt: skip


@pytest.fixture
def secured(tmp_path: Path, pki: ServerTls, county: Registry) -> Iterator[Secured]:
    plain_port, tls_port = free_port(), free_port()
    setup = Secured(None, None, pki, plain_port, tls_port, county, tmp_path / "broker")  # type: ignore[arg-type]
    setup.regenerate()
    with ConfiguredMosquitto(tmp_path / "mosquitto", setup.files.conf, plain_port) as broker:
        setup.broker = broker
        yield setup


def topics_of(recorder: Recorder) -> list[str]:
    return [topic for _, topic, _ in recorder.messages]


# --- the generated files ---------------------------------------------------------------------


def test_the_acl_gives_each_node_its_own_topics_and_nothing_else(county: Registry) -> None:
    users = {u.name: u for u in broker_users(county)}
    assert set(county.nodes) | set(county.officers) | {INGEST_USER, GRID_USER,
                                                       OPERATOR_USER} == set(users)  # fmt: skip
    for node in county.nodes.values():
        user = users[node.id]
        assert user.write == tuple(node.place.topic(k) for k in NODE_WRITES)
        assert user.read == tuple(node.place.topic(k) for k in NODE_READS)
    for officer in county.officers.values():
        assert users[officer.id].read == (alert_topic(county.county, officer.id),)
        assert users[officer.id].write == ()
    assert users[INGEST_USER].read == ("tw/v1/#",) and users[INGEST_USER].write == ()
    text = acl_text(users.values())
    # Mosquitto's ACL: "user" opens a block; the only wildcards are the services'.
    wild = [line for line in text.splitlines() if "+" in line or "#" in line.split(" ")[-1]]
    assert all(not line.startswith("#") for line in wild)
    assert len(wild) == 5  # ingest 1, grid 1, operator 3
    assert text.count("\nuser ") == len(users)


def test_a_user_name_clash_is_refused(county: Registry) -> None:
    node = {"id": "n1", "lat": 0, "lon": 0, "quantities": ["NO2"]}
    village = {"id": "v", "name": "V", "officer": {"id": "n1", "name": "O"}, "nodes": [node]}
    raw = {"county": {"id": "c", "name": "C"},
           "townships": [{"id": "t", "name": "T", "villages": [village]}]}  # fmt: skip
    with pytest.raises(BrokerConfigError, match="'n1' would be both the node and the officer"):
        broker_users(parse_registry(raw))


def test_passwords_are_hashed_kept_rotated_and_never_in_the_config(
    tmp_path: Path, county: Registry
) -> None:
    listeners = [Listener("127.0.0.1", 1883)]
    files = write_broker_config(county, tmp_path, listeners)
    assert len(files.created) == len(files.users) and files.rotated == ()
    passwords = {u.name: files.password_file(u.name).read_text().strip() for u in files.users}
    assert len(set(passwords.values())) == len(passwords)  # one random password each
    assert all(len(p) >= 32 for p in passwords.values())
    hashed = dict(line.split(":", 1) for line in files.passwd.read_text().splitlines())
    assert set(hashed) == set(passwords)
    assert all(h.startswith("$7$") for h in hashed.values())  # mosquitto_passwd's PBKDF2
    public = files.passwd.read_text() + files.acl.read_text() + files.conf.read_text()
    assert not [p for p in passwords.values() if p in public]
    for path in [files.passwd, *files.credentials.iterdir()]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(files.credentials.stat().st_mode) == 0o700

    again = write_broker_config(county, tmp_path, listeners, rotate=[A])
    assert again.created == () and again.rotated == (A,)
    after = {u.name: again.password_file(u.name).read_text().strip() for u in again.users}
    assert after[A] != passwords[A]
    assert {k: v for k, v in after.items() if k != A} == {
        k: v for k, v in passwords.items() if k != A
    }
    with pytest.raises(BrokerConfigError, match="no such broker user"):
        write_broker_config(county, tmp_path, listeners, rotate=["nobody"])


def test_a_node_removed_from_the_grid_file_loses_its_credentials(
    tmp_path: Path, county: Registry
) -> None:
    write_broker_config(county, tmp_path, [Listener("127.0.0.1", 1883)])
    nodes = {k: v for k, v in county.nodes.items() if k != B}
    files = write_broker_config(
        replace(county, nodes=nodes), tmp_path, [Listener("127.0.0.1", 1883)]
    )
    assert files.removed == (B,)
    assert not files.password_file(B).exists()
    assert f"\n{B}:" not in "\n" + files.passwd.read_text()
    assert f"user {B}\n" not in files.acl.read_text()


# --- on the real broker -----------------------------------------------------------------------


async def _forging(setup: Secured) -> tuple[list[str], list[str], list[str]]:
    forged = [
        (setup.topic(B, "data"), False),
        (setup.topic(B, "status"), True),
        (setup.topic(B, "health"), False),
        (setup.topic(B, "cfg"), True),
        (setup.topic(A, "cfg"), True),  # a node does not configure itself
        (alert_topic("yiyuan", OFFICER_X), False),
        ("tw/v1/yiyuan/nanma/dongli/yy-0001/other", False),
    ]
    everything = setup.link(INGEST_USER, "test-ingest-user")
    async with listening(everything, "tw/v1/#") as ingest:
        async with setup.link(A, "tw-edge-yy-0001", tls=True) as node_a:
            for topic, retain in forged:
                await node_a.publish(topic, b"forged by " + A.encode(), retain=retain)
            marker = setup.topic(A, "data")
            await node_a.publish(marker, b"marker")
        await ingest.wait_until(lambda: marker in topics_of(ingest), "A's own message")
        async with setup.link(B, "tw-edge-yy-0002", tls=True) as node_b:
            await node_b.publish(setup.topic(B, "data"), b"B itself")
        await ingest.wait_until(lambda: len(ingest.messages) >= 2, "B's own message")
    async with listening(setup.link(INGEST_USER, "test-retained"), "tw/v1/#") as later:
        async with setup.link(OPERATOR_USER, "test-operator") as operator:
            await operator.publish("tw/v1/yiyuan/marker/x/y/cfg", b"marker", retain=False)
        await later.wait_until(lambda: bool(later.messages), "the operator's marker")
    return topics_of(ingest), [p.decode() for _, _, p in ingest.messages], topics_of(later)


def test_a_node_cannot_publish_as_another_node(secured: Secured) -> None:
    topics, payloads, retained = asyncio.run(_forging(secured))
    # only A's own data and B's own data arrived; nothing forged, nothing retained
    assert topics == [secured.topic(A, "data"), secured.topic(B, "data")]
    assert payloads == ["marker", "B itself"]
    assert retained == ["tw/v1/yiyuan/marker/x/y/cfg"]


async def _reading_cfgs(setup: Secured) -> tuple[list[str], list[str]]:
    async with setup.link(OPERATOR_USER, "test-operator") as operator:
        for node in (B, A):
            await operator.publish(setup.topic(node, "cfg"), b'{"v": 1, "id": "c-' +
                                   node.encode() + b'"}', retain=True)  # fmt: skip
    # A asks for B's cfg, for everything, then for its own; the retained ones come in order
    node_a = setup.link(A, "tw-edge-yy-0001", tls=True)
    async with listening(node_a, setup.topic(B, "cfg"), "tw/v1/#", "#",
                         setup.topic(A, "cfg")) as seen_by_a:  # fmt: skip
        await seen_by_a.wait_until(lambda: setup.topic(A, "cfg") in topics_of(seen_by_a),
                                   "A's own cfg")  # fmt: skip
        # its acknowledgement goes to the operator; a live cfg for B still not to A
        acking = setup.link(A, "tw-edge-yy-0001-ack", tls=True)
        acks_link = setup.link(OPERATOR_USER, "test-op-acks")
        async with acking, listening(acks_link, "tw/v1/yiyuan/+/+/+/cfg_ack") as acks:
            await acking.publish(setup.topic(A, "cfg_ack"), b"ack")
            async with setup.link(OPERATOR_USER, "test-operator-2") as operator:
                await operator.publish(setup.topic(B, "cfg"), b"live for B")
                await operator.publish(setup.topic(A, "cfg"), b"live for A")
            await acks.wait_until(lambda: bool(acks.messages), "A's cfg_ack")
        await seen_by_a.wait_until(
            lambda: any(p == b"live for A" for _, _, p in seen_by_a.messages), "the live cfg"
        )
    return topics_of(seen_by_a), [p.decode() for _, _, p in seen_by_a.messages]


def test_a_node_reads_only_its_own_cfg(secured: Secured) -> None:
    topics, payloads = asyncio.run(_reading_cfgs(secured))
    # (a copy per matching subscription: A subscribed to its cfg through three filters)
    assert set(topics) == {secured.topic(A, "cfg")}
    assert set(payloads) == {'{"v": 1, "id": "c-yy-0001"}', "live for A"}


async def _alerts(setup: Secured) -> list[tuple[str, str]]:
    officer = setup.link(OFFICER_X, "test-phone-x", tls=True)
    async with listening(officer, alert_topic("yiyuan", "+"), "tw/v1/#",
                         alert_topic("yiyuan", OFFICER_X)) as phone:  # fmt: skip
        async with setup.link(OFFICER_Y, "test-phone-y", tls=True) as other:
            await other.publish(alert_topic("yiyuan", OFFICER_X), b"forged by Y")
        async with setup.link(A, "tw-edge-yy-0001", tls=True) as node_a:
            await node_a.publish(setup.topic(A, "data"), b"node data")
        async with setup.link(GRID_USER, "test-grid") as grid:
            await grid.publish(alert_topic("yiyuan", OFFICER_Y), b"for Y")
            await grid.publish(alert_topic("yiyuan", OFFICER_X), b"for X")
        await phone.wait_until(lambda: bool(phone.messages), "X's alert")
    return [(t, p.decode()) for _, t, p in phone.messages]


def test_an_officer_reads_only_their_own_alert_topic(secured: Secured) -> None:
    # (a copy per matching subscription)
    assert set(asyncio.run(_alerts(secured))) == {(alert_topic("yiyuan", OFFICER_X), "for X")}


async def _connect(setup: Secured, user: str | None, **options: object) -> None:
    async with setup.link(user, "test-client", **options):  # type: ignore[arg-type]
        pass


@pytest.mark.parametrize(
    ("user", "password", "tls"),
    [
        pytest.param(None, None, False, id="anonymous"),
        pytest.param(None, None, True, id="anonymous-tls"),
        pytest.param(A, "wrong", True, id="wrong-password"),
        pytest.param("yy-9999", "guess", False, id="unknown-user"),
        pytest.param(B, "<A's password>", True, id="another-nodes-password"),
        pytest.param(A, "", False, id="empty-password"),
    ],
)
def test_no_connection_without_valid_credentials(
    secured: Secured, user: str | None, password: str | None, tls: bool
) -> None:
    if password == "<A's password>":
        password = secured.password(A)
    with pytest.raises(LinkError):
        asyncio.run(_connect(secured, user, password=password, tls=tls))
    asyncio.run(_connect(secured, A, tls=tls))  # the control


def test_tls_needs_the_brokers_ca(secured: Secured, tmp_path: Path) -> None:
    other = issue_test_pki(tmp_path / "other-ca")
    with pytest.raises(LinkError):
        asyncio.run(_connect(secured, A, tls=True, ca=other.ca))
    asyncio.run(_connect(secured, A, tls=True))


async def _rotation(setup: Secured) -> dict[str, object]:
    old = setup.password(A)
    result: dict[str, object] = {}
    held_a = setup.link(A, "tw-edge-yy-0001", tls=True)
    async with listening(setup.link(INGEST_USER, "test-ingest-user"), "tw/v1/#") as ingest:
        await held_a.__aenter__()
        async with setup.link(B, "tw-edge-yy-0002", tls=True) as held_b:
            assert setup.broker.proc is not None
            code = main(["broker-config", "--grid", str(EXAMPLES / "county.yaml"),
                         "--out", str(setup.out), "--listen", f"127.0.0.1:{setup.plain_port}",
                         "--tls-listen", f"127.0.0.1:{setup.tls_port}",
                         "--tls-ca", str(setup.tls.ca), "--tls-cert", str(setup.tls.cert),
                         "--tls-key", str(setup.tls.key), "--run-as", getpass.getuser(),
                         "--rotate", A, "--reload-pid", str(setup.broker.proc.pid)])  # fmt: skip
            assert code == 0
            # Mosquitto rechecks connected clients on reload: A's old session is dropped
            deadline = time.monotonic() + ROTATION_TIMEOUT_S
            dropped = False
            while not dropped and time.monotonic() < deadline:
                try:
                    await held_a.publish(setup.topic(A, "health"), b"still here")
                    await asyncio.sleep(0.05)
                except LinkError:
                    dropped = True
            result["dropped"] = dropped
            await held_b.publish(setup.topic(B, "data"), b"B unaffected")
            await ingest.wait_until(lambda: setup.topic(B, "data") in topics_of(ingest),
                                    "B's message after the reload")  # fmt: skip
        with contextlib.suppress(LinkError):  # leaving a link the broker dropped
            await held_a.__aexit__(None, None, None)
    try:
        await _connect(setup, A, password=old, tls=True)
        result["old"] = "accepted"
    except LinkError:
        result["old"] = "refused"
    await _connect(setup, A, tls=True)  # the new one
    result["new"] = "accepted"
    return result


def test_a_rotated_password_takes_effect_on_sighup(secured: Secured) -> None:
    assert asyncio.run(_rotation(secured)) == {"dropped": True, "old": "refused",
                                               "new": "accepted"}  # fmt: skip


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["--tls-listen", "127.0.0.1:8883"], id="tls-listener-without-certificates"),
        pytest.param(["--tls-cert", "x.crt"], id="certificate-without-key-and-ca"),
        pytest.param(["--listen", "127.0.0.1"], id="listener-without-port"),
        pytest.param(["--rotate", "nobody"], id="rotating-an-unknown-user"),
    ],
)
def test_broker_config_refuses_bad_arguments(
    tmp_path: Path, args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    grid = str(EXAMPLES / "county.yaml")
    assert main(["broker-config", "--grid", grid, "--out", str(tmp_path), *args]) == 2
    assert "cannot write the broker configuration" in capsys.readouterr().err
