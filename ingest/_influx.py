"""TSDB sinks: InfluxDB 1.x (``/write`` + InfluxQL, on httpx) and the InfluxDB v2 write API
(on ``influxdb-client``); the only module that speaks to a TSDB. Names: docs/protocol.md.

The v1 sink is written on httpx because influxdb-client's write API needs ``/api/v2/write``,
which InfluxDB 1.6 (Debian's package) does not have (FIELD_NOTES pitfall 8).
"""

from __future__ import annotations

import asyncio
from typing import Protocol, Self

import httpx
import influxdb_client
import urllib3.exceptions
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException


class SinkError(ConnectionError):
    """The database refused or could not be reached."""


class SinkRejected(SinkError):
    """The database refused the batch itself (HTTP 400: malformed line or field type conflict):
    sending it again cannot succeed. InfluxDB has stored the good points of such a batch."""


class Sink(Protocol):
    """Where line-protocol batches go. ``write`` returns once the whole batch is stored (or,
    for a :class:`~ingest._spool.SpoolingSink`, safe on disk) and raises :class:`SinkError`
    otherwise; a failed batch may be written again whole: points are idempotent."""

    @property
    def points_written(self) -> int: ...

    async def write(self, lines: list[str]) -> None: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc_info: object) -> None: ...


class InfluxV1Sink:
    """InfluxDB 1.x: ``POST /write?db=<database>&precision=ms``; the database is created on
    entry and again if a write finds it missing (a database that was down at start)."""

    def __init__(self, url: str, database: str = "tianwang", timeout_s: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.database = database
        self._http = httpx.AsyncClient(timeout=timeout_s)
        self.points_written = 0

    async def __aenter__(self) -> Self:
        await self.query(f'CREATE DATABASE "{self.database}"')
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._http.aclose()

    async def write(self, lines: list[str]) -> None:
        if not lines:
            return
        body = "\n".join(lines).encode()
        response = await self._post_write(body)
        if response.status_code == 404 and "database not found" in response.text:
            await self.query(f'CREATE DATABASE "{self.database}"')
            response = await self._post_write(body)
        if response.status_code == 400:
            raise SinkRejected(f"write rejected: {response.text[:300]}")
        if response.status_code != 204:
            raise SinkError(f"write refused ({response.status_code}): {response.text[:300]}")
        self.points_written += len(lines)

    async def _post_write(self, body: bytes) -> httpx.Response:
        try:
            return await self._http.post(
                f"{self.url}/write",
                params={"db": self.database, "precision": "ms"},
                content=body,
            )
        except httpx.HTTPError as exc:
            raise SinkError(f"write failed: {exc}") from exc

    async def query(self, influxql: str) -> dict:
        try:
            response = await self._http.post(
                f"{self.url}/query", params={"db": self.database}, data={"q": influxql}
            )
        except httpx.HTTPError as exc:
            raise SinkError(f"query failed: {exc}") from exc
        if response.status_code != 200:
            raise SinkError(f"query refused ({response.status_code}): {response.text[:300]}")
        return response.json()


class InfluxV2Sink:
    """The InfluxDB v2 write API (``/api/v2/write``: InfluxDB 2.x, VictoriaMetrics) through
    influxdb-client's synchronous WriteApi, run in a worker thread, fed raw line protocol
    (its Point API is 5x slower: FIELD_NOTES). The client's own retries are off: retrying is
    the caller's (:class:`~ingest._spool.SpoolingSink`)."""

    def __init__(
        self, url: str, token: str, org: str, bucket: str, timeout_s: float = 10.0
    ) -> None:
        self.url = url.rstrip("/")
        self.org = org
        self.bucket = bucket
        self._client = influxdb_client.InfluxDBClient(
            url=self.url, token=token, org=org, timeout=int(timeout_s * 1000), retries=False
        )
        self._api = self._client.write_api(write_options=SYNCHRONOUS)
        self.points_written = 0

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await asyncio.to_thread(self._client.close)

    async def write(self, lines: list[str]) -> None:
        if not lines:
            return
        await asyncio.to_thread(self._write, "\n".join(lines))
        self.points_written += len(lines)

    def _write(self, body: str) -> None:
        try:
            self._api.write(
                bucket=self.bucket,
                org=self.org,
                record=body,
                write_precision=influxdb_client.WritePrecision.MS,
            )
        except ApiException as exc:
            if exc.status == 400:
                raise SinkRejected(f"write rejected: {str(exc.body)[:300]}") from exc
            raise SinkError(f"write refused ({exc.status}): {str(exc.body)[:300]}") from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise SinkError(f"write failed: {exc}") from exc
