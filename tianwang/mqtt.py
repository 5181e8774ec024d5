"""The MQTT adapter: the only module that imports an MQTT library (aiomqtt over paho 2.x).

Everything else sees ``MqttLink``: an async context manager with publish, subscribe and an
async iterator of (topic, payload); aiomqtt's exceptions become ``LinkError`` here.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties


class LinkError(ConnectionError):
    """The broker could not be reached, refused us, or the connection dropped."""


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    host: str
    port: int
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        """``mqtt://[user:password@]host:port`` (or ``mqtts://``; TLS is set by TlsFiles)."""
        rest = url.removeprefix("mqtts://").removeprefix("mqtt://")
        user = password = None
        if "@" in rest:
            creds, rest = rest.rsplit("@", 1)
            user, _, password = creds.partition(":")
        host, _, port = rest.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"broker URL must be mqtt://host:port (port 1-65535), got {url!r}")
        return cls(host, int(port), user or None, password or None)


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """CA certificate to verify the broker; client certificate and key when it asks for one."""

    ca: Path
    cert: Path | None = None
    key: Path | None = None


@dataclass(frozen=True, slots=True)
class LastWill:
    topic: str
    payload: bytes
    retain: bool = True


def _tls_parameters(tls: TlsFiles | None) -> aiomqtt.TLSParameters | None:
    if tls is None:
        return None
    return aiomqtt.TLSParameters(
        ca_certs=str(tls.ca),
        certfile=str(tls.cert) if tls.cert else None,
        keyfile=str(tls.key) if tls.key else None,
    )


class MqttLink:
    """One MQTT 5 connection.

    Args:
        broker: where to connect.
        client_id: fixed id; with ``session_expiry_s > 0`` the broker keeps the session
            (subscriptions and queued QoS 1 messages) while we are away.
        will: published by the broker if the connection dies without a DISCONNECT.
        max_queued_incoming: bound of the receive queue (0 = unbounded).
        tls: verify the broker with this CA (and present a client certificate).
    """

    def __init__(
        self,
        broker: BrokerAddress,
        client_id: str,
        *,
        will: LastWill | None = None,
        session_expiry_s: int = 0,
        max_queued_incoming: int = 0,
        keepalive_s: int = 30,
        tls: TlsFiles | None = None,
    ) -> None:
        properties = Properties(PacketTypes.CONNECT)
        if session_expiry_s:
            properties.SessionExpiryInterval = session_expiry_s
        self._client = aiomqtt.Client(
            broker.host,
            broker.port,
            username=broker.username,
            password=broker.password,
            identifier=client_id,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=session_expiry_s == 0,
            properties=properties,
            keepalive=keepalive_s,
            will=aiomqtt.Will(will.topic, will.payload, qos=1, retain=will.retain)
            if will
            else None,
            max_queued_incoming_messages=max_queued_incoming,
            tls_params=_tls_parameters(tls),
        )

    async def __aenter__(self) -> Self:
        try:
            await self._client.__aenter__()
        except aiomqtt.MqttError as exc:
            raise LinkError(str(exc)) from exc
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            await self._client.__aexit__(*exc_info)
        except aiomqtt.MqttError as exc:
            raise LinkError(str(exc)) from exc

    async def publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
    ) -> None:
        """Publish; with QoS 1 returns once the broker has acknowledged (PUBACK)."""
        try:
            await self._client.publish(topic, payload, qos=qos, retain=retain)
        except aiomqtt.MqttError as exc:
            raise LinkError(str(exc)) from exc

    async def subscribe(self, topic_filter: str, *, qos: int = 1) -> None:
        try:
            await self._client.subscribe(topic_filter, qos=qos)
        except aiomqtt.MqttError as exc:
            raise LinkError(str(exc)) from exc

    def sever(self) -> None:
        """Drop the TCP connection without a DISCONNECT, as a network fault does: the broker
        publishes the last will and the next operation raises LinkError. For simulation."""
        sock = self._client._client.socket()  # paho's socket; None when not connected
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    async def messages(self) -> AsyncIterator[tuple[str, bytes]]:
        try:
            async for message in self._client.messages:
                payload = message.payload
                if isinstance(payload, str):
                    payload = payload.encode()
                elif not isinstance(payload, bytes | bytearray):
                    payload = b""
                yield message.topic.value, bytes(payload)
        except aiomqtt.MqttError as exc:
            raise LinkError(str(exc)) from exc
