"""Reading back what ingest stored (the ``sample`` measurement, docs/protocol.md): for the
demo's counts, the tests and the chaos suite, which compare published and stored readings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ingest._influx import InfluxV1Sink
from ingest._lines import SAMPLE_MEASUREMENT


@dataclass(frozen=True, slots=True)
class StoredReading:
    node: str
    quantity: str
    seq: int
    ts_ms: int
    value: float | None
    flag: str | None


async def stored_readings(sink: InfluxV1Sink, node: str | None = None) -> list[StoredReading]:
    """Every stored reading (one per ``<q>_seq`` field of each point), optionally of one node."""
    where = f" WHERE \"node\" = '{node}'" if node else ""
    result = await sink.query(f'SELECT * FROM "{SAMPLE_MEASUREMENT}"{where} GROUP BY "node"')
    out = []
    for series in result["results"][0].get("series", []):
        columns = series["columns"]
        for row in series["values"]:
            fields = dict(zip(columns, row, strict=True))
            for key, seq in fields.items():
                if key.endswith("_seq") and seq is not None:
                    q = key[: -len("_seq")]
                    out.append(StoredReading(series["tags"]["node"], q, int(seq),
                                             _ms(fields["time"]), fields.get(q),
                                             fields.get(f"{q}_flag")))  # fmt: skip
    return out


async def count_stored(sink: InfluxV1Sink) -> dict[str, int]:
    """Readings in the TSDB per node."""
    counts: dict[str, int] = {}
    for r in await stored_readings(sink):
        counts[r.node] = counts.get(r.node, 0) + 1
    return counts


def _ms(rfc3339: str) -> int:
    return round(datetime.fromisoformat(rfc3339).timestamp() * 1000)
