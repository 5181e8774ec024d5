"""The ingest hot path's MQTT 5 subscriber, on gmqtt: the only module that imports it.

Why gmqtt and not the project's aiomqtt adapter (tianwang/mqtt.py): measured here it takes
~37k QoS 1 messages/s against aiomqtt's 8.6k (FIELD_NOTES), and it can hold back a
message's PUBACK until a coroutine says so (``optimistic_acknowledgement=False``). Ingest
uses that to acknowledge a message only once its readings are durable (in the TSDB or the
spool): a crash of ingest then loses nothing, because the broker redelivers what was not
acknowledged. The broker sends at most ``receive_maximum`` unacknowledged messages, so the
acknowledgement is also the backpressure: when writes stall, the broker keeps the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from gmqtt import Client
from gmqtt.mqtt.constants import MQTTv50

from tianwang.mqtt import BrokerAddress

log = logging.getLogger(__name__)

# topic, payload -> an awaitable that completes when the message may be acknowledged
MessageHandler = Callable[[str, bytes], Awaitable[None]]


class SubscriberError(ConnectionError):
    """The broker refused the connection or could not be reached."""


class Subscriber:
    """Persistent MQTT 5 session (fixed client id, session expiry, QoS 1); each message is
    acknowledged when the awaitable its handler returned completes. If it never completes
    (shutdown, crash), the message stays unacknowledged and the broker redelivers it."""

    def __init__(
        self,
        broker: BrokerAddress,
        client_id: str,
        filters: Sequence[str],
        handle: MessageHandler,
        *,
        session_expiry_s: int = 3600,
        receive_maximum: int = 2000,
        keepalive_s: int = 30,
        reconnect_delay_s: float = 1.0,
    ) -> None:
        self.broker = broker
        self.filters = tuple(filters)
        self._handle = handle
        self._client = Client(
            client_id,
            clean_session=False,
            optimistic_acknowledgement=False,
            session_expiry_interval=session_expiry_s,
            receive_maximum=receive_maximum,
        )
        self._client.on_message = self._on_message
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._keepalive_s = keepalive_s
        self._reconnect_delay_s = reconnect_delay_s
        self.connected = asyncio.Event()
        self.connections = 0
        self._stopping = False

    async def start(self) -> None:
        client = self._client
        if self.broker.username:
            client.set_auth_credentials(self.broker.username, self.broker.password)
        client.set_config({"reconnect_retries": -1,  # keep trying
                           "reconnect_delay": self._reconnect_delay_s})  # fmt: skip
        try:
            await client.connect(self.broker.host, self.broker.port, keepalive=self._keepalive_s,
                                 version=MQTTv50)  # fmt: skip
        except Exception as exc:  # gmqtt raises OSError or its own errors
            raise SubscriberError(f"cannot connect to {self.broker.host}:"
                                  f"{self.broker.port}: {exc}") from exc  # fmt: skip

    async def stop(self) -> None:
        """Disconnect; what was not acknowledged stays with the broker's session."""
        self._stopping = True
        with contextlib.suppress(Exception):
            await self._client.disconnect()
        self.connected.clear()

    def _on_connect(self, client: Client, flags: int, rc: int, properties: Any) -> None:
        # (re)subscribe every time: harmless on a resumed session, needed on a new one
        for topic_filter in self.filters:
            client.subscribe(topic_filter, qos=1)
        self.connections += 1
        self.connected.set()

    def _on_disconnect(self, client: Client, packet: bytes, exc: Exception | None = None) -> None:
        self.connected.clear()
        if not self._stopping:
            log.warning("broker link lost (%s); gmqtt reconnects", exc)

    async def _on_message(self, client: Client, topic: str, payload: bytes, qos: int,
                          properties: Any) -> int:  # fmt: skip
        await self._handle(topic, payload)
        return 0  # PUBACK reason code: success
