"""Notifications: one notice (an incident change an officer must hear of) fanned out to
every channel the officer has, concurrently, each bounded by its own timeout, so a failing
channel never blocks or fails the others.

Channels: MQTT (the phone app; ``tw/v1/<county>/_alerts/<officer>``, QoS 1), webhook (JSON
POST signed ``X-Tianwang-Signature: sha256=<HMAC-SHA256 of the body>``, retried with
backoff on 5xx, 429, timeouts and connection errors) and e-mail (SMTP). Secrets (webhook
secrets, the SMTP password) come from the environment (``webhook_secrets_from_env``,
``SmtpConfig.from_env``) and never appear in a log line or a delivery record.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import http.client
import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from typing import Any, Literal, Protocol
from urllib import error as urlerror
from urllib import request as urlrequest

import aiosmtplib
import orjson

from grid._store import Incident
from tianwang.mqtt import LinkError, MqttLink
from tianwang.registry import Officer
from tianwang.topics import alert_topic

log = logging.getLogger(__name__)

Status = Literal["sent", "failed", "skipped"]
CHANNEL_TIMEOUT_S = 30.0  # a channel still busy after this is given up (recorded as failed)
SIGNATURE_HEADER = "X-Tianwang-Signature"
DELIVERY_HEADER = "X-Tianwang-Delivery"  # the notice id: a receiver drops a redelivery by it
_ENV_ID = re.compile(r"[^A-Za-z0-9]")

# What the officer is asked to do, per audit action that notifies.
ACTIONS = {
    "created": "new incident",
    "reopened": "incident reopened",
    "transition": "incident reopened",  # an officer reopened it (a rejected finding)
    "escalated": "incident escalated to you",
    "handed_off": "incident handed over to you at the change of duty",
    "reassigned": "incident reassigned to you",
}


@dataclass(frozen=True, slots=True)
class Notice:
    """What ``officer`` is told about one change of ``incident`` (the audit entry
    ``audit_id``, which also makes the notice's id)."""

    audit_id: int
    action: str
    incident: Incident
    officer: Officer
    place: str
    reason: str
    at: datetime

    @property
    def headline(self) -> str:
        i = self.incident
        where = f"{self.place} {i.node}" if i.node else f"{self.place} (several nodes)"
        what = ACTIONS.get(self.action, self.action)
        return f"#{i.id} {what}: {i.quantity} {i.rule} at {where} ({i.severity})"

    def payload(self) -> dict[str, Any]:
        i = self.incident
        due = i.ack_due_at.isoformat() if i.ack_due_at else None
        return {
            "v": 1,
            "notice": self.audit_id,
            "action": self.action,
            "at": self.at.isoformat(),
            "officer": self.officer.id,
            "headline": self.headline,
            "reason": self.reason,
            "incident": {
                "id": i.id,
                "scope": i.scope,
                "node": i.node,
                "county": i.county,
                "township": i.township,
                "village": i.village,
                "place": self.place,
                "quantity": i.quantity,
                "rule": i.rule,
                "severity": i.severity,
                "status": i.status,
                "level": i.assigned_level,
                "value": i.value,
                "peak": i.peak,
                "limit": i.limit_value,
                "unit": i.unit,
                "standard": i.standard,
                "edition": i.edition,
                "started_at": i.started_at.isoformat() if i.started_at else None,
                "ack_due_at": due,
            },
        }

    def body(self) -> bytes:
        return orjson.dumps(self.payload())

    def text(self) -> str:
        i = self.incident
        limit = "" if i.limit_value is None else f" (limit {i.limit_value:g} {i.unit})"
        due = f"Acknowledge by {i.ack_due_at.isoformat()}.\n" if i.ack_due_at else ""
        return (
            f"{self.headline}\n\n"
            f"Value {i.value:g} {i.unit}, peak {i.peak:g}{limit}; {i.standard} {i.edition}.\n"
            f"Why you: {self.reason}\n{due}"
        )


@dataclass(frozen=True, slots=True)
class Delivery:
    """The outcome of one channel for one notice, as recorded in the audit log."""

    channel: str
    status: Status
    attempts: int = 0
    error: str = ""

    def record(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "status": self.status,
            "attempts": self.attempts,
            "error": self.error,
        }


@dataclass(slots=True)
class Attempts:
    """Counted by a channel as it goes, so a timeout still reports how many were made."""

    count: int = 0


class Channel(Protocol):
    name: str

    def applies(self, officer: Officer) -> bool:
        """Whether the officer can be reached this way (has an address for it)."""
        ...

    async def send(self, notice: Notice, attempts: Attempts) -> None:
        """Deliver or raise; count each try in ``attempts``."""
        ...


class DeliveryError(Exception):
    """A channel's failure, with a message safe to record (no secret, no credentials)."""


class Notifier:
    """Fans a notice out to ``channels`` concurrently; each gets ``timeout_s``."""

    def __init__(self, channels: Sequence[Channel], timeout_s: float = CHANNEL_TIMEOUT_S) -> None:
        self.channels = tuple(channels)
        self.timeout_s = timeout_s

    async def send(self, notice: Notice) -> list[Delivery]:
        return list(await asyncio.gather(*(self._one(c, notice) for c in self.channels)))

    async def _one(self, channel: Channel, notice: Notice) -> Delivery:
        if not channel.applies(notice.officer):
            return Delivery(channel.name, "skipped", 0, "no address for this channel")
        attempts = Attempts()
        try:
            await asyncio.wait_for(channel.send(notice, attempts), self.timeout_s)
        except TimeoutError:
            error = f"no delivery within {self.timeout_s:g} s"
        except DeliveryError as exc:
            error = str(exc)
        except Exception as exc:  # a channel's bug must not cost the other channels
            error = f"{type(exc).__name__}"
            log.exception("notice %d: channel %s crashed", notice.audit_id, channel.name)
        else:
            return Delivery(channel.name, "sent", attempts.count)
        log.warning(
            "notice %d (incident #%d) to %s via %s failed after %d attempt(s): %s",
            notice.audit_id, notice.incident.id, notice.officer.id, channel.name,
            attempts.count, error,
        )  # fmt: skip
        return Delivery(channel.name, "failed", attempts.count, error)


# --- MQTT ---------------------------------------------------------------------------------


class MqttChannel:
    """Publishes the notice JSON with QoS 1 to the officer's alert topic (or the topic in
    the officer's ``mqtt`` field, if set). ``link`` is connected by the caller; the app keeps
    a persistent session so alerts sent while it is offline are queued by the broker."""

    name = "mqtt"

    def __init__(self, link: MqttLink, county: str) -> None:
        self.link = link
        self.county = county

    def applies(self, officer: Officer) -> bool:
        return True  # every officer has an alert topic

    async def send(self, notice: Notice, attempts: Attempts) -> None:
        topic = notice.officer.mqtt or alert_topic(self.county, notice.officer.id)
        attempts.count += 1
        try:
            await self.link.publish(topic, notice.body(), qos=1)
        except LinkError as exc:
            raise DeliveryError(f"broker: {exc}") from None


# --- webhook ------------------------------------------------------------------------------


def sign(body: bytes, secret: str) -> str:
    """The ``X-Tianwang-Signature`` value: ``sha256=`` and the hex HMAC-SHA256 of the body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def webhook_secrets_from_env(
    environ: Mapping[str, str] = os.environ,
) -> Callable[[str], str | None]:
    """Officer id -> webhook secret: ``TIANWANG_WEBHOOK_SECRET_<ID>`` (the id upper-cased,
    other than letters and digits as ``_``), else ``TIANWANG_WEBHOOK_SECRET``."""

    def secret(officer_id: str) -> str | None:
        own = f"TIANWANG_WEBHOOK_SECRET_{_ENV_ID.sub('_', officer_id).upper()}"
        return environ.get(own) or environ.get("TIANWANG_WEBHOOK_SECRET") or None

    return secret


def _retryable(status: int) -> bool:
    return status >= 500 or status == 429


class _NoRedirect(urlrequest.HTTPRedirectHandler):
    """A redirect is answered as a failure: a signed alert is not forwarded elsewhere."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urlrequest.build_opener(_NoRedirect())


def _post(url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> int:
    """The HTTP status of a POST (blocking: run in a thread). The standard library's client,
    as httpx lives in its adapter modules (tests/test_architecture.py)."""
    call = urlrequest.Request(url, data=body, headers=headers, method="POST")
    try:
        with _OPENER.open(call, timeout=timeout_s) as response:
            return int(response.status)
    except urlerror.HTTPError as exc:
        return int(exc.code)


def _transport_error(exc: Exception) -> str:
    """What went wrong, without the URL (it may carry a token)."""
    reason = exc.reason if isinstance(exc, urlerror.URLError) else exc
    if isinstance(reason, TimeoutError):
        return "timeout"
    return f"connection failed ({type(reason).__name__})"


class WebhookChannel:
    """POSTs the notice JSON to the officer's ``webhook`` URL, signed with the officer's
    secret. 5xx, 429, timeouts and connection errors are retried up to ``retries`` more
    times, waiting ``backoff_s`` doubling each time; any other non-2xx fails at once. An
    officer without a secret is not sent to: an unsigned call could not be trusted."""

    name = "webhook"

    def __init__(
        self,
        secret_for: Callable[[str], str | None],
        *,
        retries: int = 3,
        backoff_s: float = 0.5,
        request_timeout_s: float = 5.0,
    ) -> None:
        self.secret_for = secret_for
        self.retries = retries
        self.backoff_s = backoff_s
        self.request_timeout_s = request_timeout_s

    def applies(self, officer: Officer) -> bool:
        return bool(officer.webhook)

    async def send(self, notice: Notice, attempts: Attempts) -> None:
        secret = self.secret_for(notice.officer.id)
        if not secret:
            raise DeliveryError("no webhook secret configured for this officer")
        body = notice.body()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "tianwang-grid",
            SIGNATURE_HEADER: sign(body, secret),
            DELIVERY_HEADER: str(notice.audit_id),
        }
        error = ""
        for attempt in range(self.retries + 1):
            if attempt:
                await asyncio.sleep(self.backoff_s * 2 ** (attempt - 1))
            attempts.count += 1
            try:
                status = await asyncio.to_thread(
                    _post, notice.officer.webhook, body, headers, self.request_timeout_s
                )
            except (OSError, http.client.HTTPException) as exc:  # timeouts, refusals
                error = _transport_error(exc)
                continue
            if 200 <= status < 300:
                return
            error = f"HTTP {status}"
            if not _retryable(status):
                break
        raise DeliveryError(error)


# --- e-mail -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    host: str
    port: int = 587
    sender: str = "tianwang@localhost"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    starttls: bool = False  # STARTTLS after connecting (port 587)
    tls: bool = False  # TLS from the start (port 465)
    timeout_s: float = 10.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> SmtpConfig | None:
        """``TIANWANG_SMTP_HOST`` (none: no e-mail), ``_PORT``, ``_FROM``, ``_USER``,
        ``_PASSWORD``, ``_STARTTLS``/``_TLS`` (1/true/yes)."""
        host = environ.get("TIANWANG_SMTP_HOST")
        if not host:
            return None

        def flag(name: str) -> bool:
            return environ.get(name, "").lower() in ("1", "true", "yes")

        return cls(
            host=host,
            port=int(environ.get("TIANWANG_SMTP_PORT", "587")),
            sender=environ.get("TIANWANG_SMTP_FROM", "tianwang@localhost"),
            username=environ.get("TIANWANG_SMTP_USER") or None,
            password=environ.get("TIANWANG_SMTP_PASSWORD") or None,
            starttls=flag("TIANWANG_SMTP_STARTTLS"),
            tls=flag("TIANWANG_SMTP_TLS"),
        )


class EmailChannel:
    """Sends the notice as a plain-text mail to the officer's ``email``, one SMTP session
    per notice; the notice JSON rides along as an attachment for a mail-reading program."""

    name = "email"

    def __init__(self, config: SmtpConfig) -> None:
        self.config = config

    def applies(self, officer: Officer) -> bool:
        return bool(officer.email)

    def message(self, notice: Notice) -> EmailMessage:
        mail = EmailMessage()
        mail["From"] = self.config.sender
        mail["To"] = notice.officer.email
        mail["Subject"] = f"[天网] {notice.headline}"
        mail["Message-ID"] = f"<notice-{notice.audit_id}@tianwang>"
        mail.set_content(notice.text())
        mail.add_attachment(notice.body(), maintype="application", subtype="json",
                            filename=f"notice-{notice.audit_id}.json")  # fmt: skip
        return mail

    async def send(self, notice: Notice, attempts: Attempts) -> None:
        c = self.config
        attempts.count += 1
        try:
            await aiosmtplib.send(
                self.message(notice),
                hostname=c.host,
                port=c.port,
                username=c.username,
                password=c.password,
                start_tls=c.starttls,
                use_tls=c.tls,
                timeout=c.timeout_s,
            )
        except (aiosmtplib.SMTPException, OSError) as exc:
            # the type, and the server's code if any: its text might echo credentials
            code = getattr(exc, "code", None)
            raise DeliveryError(f"{type(exc).__name__}" + (f" {code}" if code else "")) from None
