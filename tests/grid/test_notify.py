"""Notification channels against real local servers: Mosquitto (an MQTT subscriber in the
test), an HTTP receiver that checks the HMAC signature, and aiosmtpd. A failing channel
(a webhook that answers 500 forever, an SMTP server that is down) costs the others nothing."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from grid import (
    Delivery,
    EmailChannel,
    Incident,
    MqttChannel,
    Notice,
    Notifier,
    SmtpConfig,
    WebhookChannel,
    alert_topic,
    sign,
    webhook_secrets_from_env,
)
from tianwang.mqtt import BrokerAddress, MqttLink
from tianwang.registry import Officer
from tianwang.services import Mosquitto

SECRET = "s3cret-for-off-v1"
T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Receiver:
    """A webhook endpoint: answers each POST with the next of ``statuses`` (the last one
    repeats), after ``delay_s``; records bodies and whether their signature checked."""

    statuses: list[int]
    delay_s: float = 0.0
    secret: str = SECRET
    calls: list[tuple[bytes, bool, str]] = field(default_factory=list)  # body, signed, id
    url: str = ""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver([200])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            expected = sign(body, state.secret)
            given = self.headers.get("X-Tianwang-Signature", "")
            ok = hmac.compare_digest(expected, given)
            state.calls.append((body, ok, self.headers.get("X-Tianwang-Delivery", "")))
            time.sleep(state.delay_s)
            status = state.statuses[min(len(state.calls), len(state.statuses)) - 1]
            self.send_response(status if ok else 401)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    mailbox = Mailbox()
    port = _free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield mailbox, port
    controller.stop()


def _incident() -> Incident:
    return Incident(
        id=7, node="yy-0001", quantity="PM2.5", rule="1h_mean", status="open",
        township="nanma", village="dongli", officer_id="off-v1", value=160.0, peak=170.0,
        limit_value=75.0, unit="ug/m3", standard="GB 3095", edition="GB 3095-2012", events=3,
        county="yiyuan", severity="critical", ack_due_at=T0, started_at=T0,
    )  # fmt: skip


def _notice(officer: Officer) -> Notice:
    return Notice(41, "escalated", _incident(), officer, "沂源县 南麻街道 东里村",
                  "not acknowledged within 15 min", T0)  # fmt: skip


def _officer(webhook: str = "", email: str = "") -> Officer:
    return Officer("off-v1", "王建国", "+86 533 3200 1000", email=email, webhook=webhook)


def _secrets(officer_id: str) -> str | None:
    return SECRET if officer_id == "off-v1" else None


def _by_channel(deliveries: list[Delivery]) -> dict[str, Delivery]:
    return {d.channel: d for d in deliveries}


def test_webhook_is_signed_and_carries_the_incident(receiver: Receiver) -> None:
    notifier = Notifier([WebhookChannel(_secrets)])
    [delivery] = asyncio.run(notifier.send(_notice(_officer(webhook=receiver.url))))
    assert delivery == Delivery("webhook", "sent", 1)
    [(body, signed, notice_id)] = receiver.calls
    assert signed and notice_id == "41"
    payload = json.loads(body)
    assert payload["action"] == "escalated" and payload["officer"] == "off-v1"
    assert payload["incident"]["id"] == 7 and payload["incident"]["severity"] == "critical"
    assert payload["incident"]["place"] == "沂源县 南麻街道 东里村"


def test_a_receiver_verifies_the_signature_without_our_code(receiver: Receiver) -> None:
    """What a receiver written from docs/architecture.md alone does: HMAC-SHA256 of the raw
    body with the shared secret, hex, after "sha256="; a wrong secret or an altered body
    does not verify, and the receiver's 401 is not retried."""
    [delivery] = asyncio.run(Notifier([WebhookChannel(_secrets)]).send(
        _notice(_officer(webhook=receiver.url))))  # fmt: skip
    assert delivery.status == "sent"
    [(body, _, _)] = receiver.calls
    header = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert sign(body, SECRET) == header
    assert sign(body + b" ", SECRET) != header and sign(body, SECRET + "x") != header

    receiver.secret, receiver.calls = "the receiver's other secret", []
    channel = WebhookChannel(_secrets, retries=2, backoff_s=0.01)
    [refused] = asyncio.run(Notifier([channel]).send(_notice(_officer(webhook=receiver.url))))
    assert refused == Delivery("webhook", "failed", 1, "HTTP 401")
    assert [signed for _, signed, _ in receiver.calls] == [False]


def test_webhook_retries_5xx_then_succeeds(receiver: Receiver) -> None:
    receiver.statuses = [500, 503, 200]
    channel = WebhookChannel(_secrets, retries=3, backoff_s=0.01)
    [delivery] = asyncio.run(Notifier([channel]).send(_notice(_officer(webhook=receiver.url))))
    assert delivery == Delivery("webhook", "sent", 3)
    assert len(receiver.calls) == 3 and all(signed for _, signed, _ in receiver.calls)


def test_webhook_retries_are_bounded_and_4xx_is_not_retried(receiver: Receiver) -> None:
    channel = WebhookChannel(_secrets, retries=2, backoff_s=0.01)
    notice = _notice(_officer(webhook=receiver.url))
    receiver.statuses = [500]
    [failed] = asyncio.run(Notifier([channel]).send(notice))
    assert failed == Delivery("webhook", "failed", 3, "HTTP 500")
    assert len(receiver.calls) == 3
    receiver.statuses, receiver.calls = [404], []
    [refused] = asyncio.run(Notifier([channel]).send(notice))
    assert refused == Delivery("webhook", "failed", 1, "HTTP 404")


def test_webhook_timeout_is_retried(receiver: Receiver) -> None:
    receiver.delay_s = 0.5
    channel = WebhookChannel(_secrets, retries=1, backoff_s=0.01, request_timeout_s=0.1)
    [delivery] = asyncio.run(Notifier([channel]).send(_notice(_officer(webhook=receiver.url))))
    assert (delivery.status, delivery.attempts, delivery.error) == ("failed", 2, "timeout")


def test_webhook_without_a_secret_is_not_sent(receiver: Receiver) -> None:
    channel = WebhookChannel(lambda officer_id: None)
    [delivery] = asyncio.run(Notifier([channel]).send(_notice(_officer(webhook=receiver.url))))
    assert delivery.status == "failed" and "secret" in delivery.error
    assert receiver.calls == []


def test_webhook_secrets_come_from_the_environment() -> None:
    secret = webhook_secrets_from_env(
        {"TIANWANG_WEBHOOK_SECRET_OFF_V1": "own", "TIANWANG_WEBHOOK_SECRET": "shared"}
    )
    assert (secret("off-v1"), secret("off-v2")) == ("own", "shared")
    assert webhook_secrets_from_env({})("off-v1") is None


def test_email_reaches_a_real_smtp_server(smtp: tuple[Mailbox, int]) -> None:
    mailbox, port = smtp
    channel = EmailChannel(SmtpConfig("127.0.0.1", port, sender="alerts@tianwang.test"))
    officer = _officer(email="wang@yiyuan.test")
    [delivery] = asyncio.run(Notifier([channel]).send(_notice(officer)))
    assert delivery == Delivery("email", "sent", 1)
    [(sender, recipients, content)] = mailbox.messages
    assert (sender, recipients) == ("alerts@tianwang.test", ["wang@yiyuan.test"])
    mail = message_from_bytes(content)
    assert "#7" in str(mail["Subject"]) and mail["Message-ID"] == "<notice-41@tianwang>"
    [text, attachment] = [p for p in mail.walk() if not p.is_multipart()]
    assert "160 ug/m3" in text.get_payload(decode=True).decode()
    assert json.loads(attachment.get_payload(decode=True))["notice"] == 41


def test_smtp_config_from_the_environment_hides_the_password() -> None:
    config = SmtpConfig.from_env(
        {"TIANWANG_SMTP_HOST": "mail.test", "TIANWANG_SMTP_PORT": "2525",
         "TIANWANG_SMTP_PASSWORD": "hunter2", "TIANWANG_SMTP_STARTTLS": "yes"}
    )  # fmt: skip
    assert config is not None and (config.port, config.starttls) == (2525, True)
    assert "hunter2" not in repr(config)
    assert SmtpConfig.from_env({}) is None


def test_mqtt_alert_reaches_the_officers_topic(mosquitto: Mosquitto) -> None:
    address = BrokerAddress.parse(mosquitto.url)

    async def run() -> tuple[str, bytes, list[Delivery]]:
        async with MqttLink(address, "phone-off-v1") as phone, MqttLink(address, "grid") as link:
            await phone.subscribe(alert_topic("yiyuan", "+"), qos=1)
            deliveries = await Notifier([MqttChannel(link, "yiyuan")]).send(_notice(_officer()))
            messages = phone.messages()
            topic, payload = await asyncio.wait_for(anext(messages), 10)
            return topic, payload, deliveries

    topic, payload, deliveries = asyncio.run(run())
    assert deliveries == [Delivery("mqtt", "sent", 1)]
    assert topic == "tw/v1/yiyuan/_alerts/off-v1"
    assert json.loads(payload)["incident"]["id"] == 7


def test_a_failing_channel_blocks_none_of_the_others(
    mosquitto: Mosquitto, receiver: Receiver, smtp: tuple[Mailbox, int]
) -> None:
    """Webhook 500 forever and an SMTP server that is down; a second webhook that hangs
    past the channel timeout. MQTT and the working e-mail still deliver, and promptly."""
    receiver.statuses = [500]
    mailbox, port = smtp
    dead_smtp = EmailChannel(SmtpConfig("127.0.0.1", _free_port(), timeout_s=2))
    dead_smtp.name = "email-down"
    officer = _officer(webhook=receiver.url, email="wang@yiyuan.test")
    address = BrokerAddress.parse(mosquitto.url)

    class Hanging:
        name = "hanging"

        def applies(self, officer: Officer) -> bool:
            return True

        async def send(self, notice: Notice, attempts: Any) -> None:
            attempts.count += 1
            await asyncio.sleep(60)

    async def run() -> tuple[list[Delivery], float]:
        async with MqttLink(address, "phone") as phone, MqttLink(address, "grid") as link:
            await phone.subscribe(alert_topic("yiyuan", "off-v1"))
            channels = [
                WebhookChannel(_secrets, retries=2, backoff_s=0.01),
                dead_smtp,
                Hanging(),
                MqttChannel(link, "yiyuan"),
                EmailChannel(SmtpConfig("127.0.0.1", port)),
            ]
            began = time.monotonic()
            deliveries = await Notifier(channels, timeout_s=1.0).send(_notice(officer))
            elapsed = time.monotonic() - began
            await asyncio.wait_for(anext(phone.messages()), 10)
            return deliveries, elapsed

    deliveries, elapsed = asyncio.run(run())
    got = _by_channel(deliveries)
    assert got["webhook"] == Delivery("webhook", "failed", 3, "HTTP 500")
    assert got["email-down"].status == "failed" and got["email-down"].attempts == 1
    assert got["hanging"] == Delivery("hanging", "failed", 1, "no delivery within 1 s")
    assert got["mqtt"].status == "sent" and got["email"].status == "sent"
    assert len(mailbox.messages) == 1
    assert elapsed < 5  # concurrently: bounded by the slowest timeout, not their sum


def test_a_channel_without_an_address_is_skipped() -> None:
    deliveries = asyncio.run(
        Notifier([WebhookChannel(_secrets), EmailChannel(SmtpConfig("127.0.0.1", 1))]).send(
            _notice(_officer())
        )
    )
    assert [d.status for d in deliveries] == ["skipped", "skipped"]


def test_webhook_connection_refused_is_retried_and_bounded() -> None:
    channel = WebhookChannel(_secrets, retries=2, backoff_s=0.01)
    officer = _officer(webhook=f"http://127.0.0.1:{_free_port()}/hook")
    [delivery] = asyncio.run(Notifier([channel]).send(_notice(officer)))
    assert delivery == Delivery(
        "webhook", "failed", 3, "connection failed (ConnectionRefusedError)"
    )
