"""TSDB sink for InfluxDB 1.x (``/write`` + InfluxQL); the only module that speaks to it.

Written on httpx rather than influxdb-client: that client's write API needs
``/api/v2/write``, which InfluxDB 1.6 (Debian's package) does not have.
"""

from __future__ import annotations

from typing import Self

import httpx


class SinkError(ConnectionError):
    """The database refused or could not be reached."""


class InfluxV1Sink:
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
        try:
            response = await self._http.post(
                f"{self.url}/write",
                params={"db": self.database, "precision": "ms"},
                content="\n".join(lines).encode(),
            )
        except httpx.HTTPError as exc:
            raise SinkError(f"write failed: {exc}") from exc
        if response.status_code != 204:
            raise SinkError(f"write refused ({response.status_code}): {response.text[:300]}")
        self.points_written += len(lines)

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
