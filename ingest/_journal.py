"""The detector's durable input: numbered checkpoints plus a journal of the batches fed since
the last one.

Ingest acknowledges a message once its batch is written and has gone through the detector.
A periodic checkpoint alone would forget, on a SIGKILL, every batch acknowledged after it: the
broker does not send those again, so the restarted detector would never see them (an hour
short of samples can hide an exceedance). So each batch the detector takes is also appended
here before its messages are acknowledged, and a restart restores the newest checkpoint and
replays the journal written after it: every acknowledged reading is in the detector's state
exactly once.

Files in the worker's folder, ``g`` the generation:

- ``journal-<g>.bin``: the batches fed after checkpoint ``g - 1`` (series registrations too,
  so that replayed series get the ids they had);
- ``detector-<g>.json``: how many readings checkpoint ``g`` holds; written before the
  checkpoint, so it exists whenever the checkpoint does;
- ``detector-<g>.npz``: the checkpoint (``Detector.checkpoint`` writes it aside and renames
  it: a file by that name is complete). Writing it is the commit: a crash before leaves
  checkpoint ``g - 1`` and ``journal-<g>`` (replayed), a crash after leaves checkpoint ``g``
  (``journal-<g>`` is then ignored).

A journal record is written with one ``write`` and no fsync: it survives a killed process,
not a power cut (the TSDB side does: the spool fsyncs). A batch fed but whose
acknowledgements had not left when the process died is delivered again by the broker: the
replayed readings' (node, seq) go to the new process's de-duplication (``seen``), so it is
not fed twice (found by the chaos scenario ``ingest_killed``: 168 readings twice).
"""

from __future__ import annotations

import json
import logging
import os
import re
import struct
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np

from detect import Detector, ExceedanceEvent, ReadingBatch

log = logging.getLogger(__name__)

SeriesKey = tuple[int, str, str, str, str | None]  # id, node, quantity, limit class, township
LEGACY_CHECKPOINT = "detector.npz"  # one unnumbered checkpoint, as earlier versions wrote
_HEADER = struct.Struct("<4sII")  # magic, JSON bytes, rows
_MAGIC = b"TWJ1"
_ROW_BYTES = 8 + 8 + 8 + 8 + 1  # series, seq, ts_s, value, valid
_NUMBERED = re.compile(r"detector-(\d+)\.npz")


class DetectorJournal:
    """``load`` once at start, ``record`` every batch the detector took (the ingest
    service's ``on_detected``), ``checkpoint`` on a period and at exit. ``readings`` is the
    number of readings the detector's state holds: those of the restored checkpoint, the
    replayed journal and every batch recorded since."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.readings = 0
        self.replayed = 0
        self.seen: list[tuple[str, int]] = []  # (node, seq) of the replayed readings
        self._generation = 0
        self._journal: BinaryIO | None = None
        self._nodes: dict[int, str] = {}  # series id -> node, for ``seen``

    def _path(self, kind: str, generation: int) -> Path:
        suffix = "bin" if kind == "journal" else kind
        stem = "journal" if kind == "journal" else "detector"
        return self.folder / f"{stem}-{generation}.{suffix}"

    def _newest_checkpoint(self) -> int | None:
        found = [int(m.group(1)) for p in self.folder.glob("detector-*.npz")
                 if (m := _NUMBERED.fullmatch(p.name))]  # fmt: skip
        return max(found, default=None)

    def load(
        self, build: Callable[[Path | None], Detector]
    ) -> tuple[Detector, list[ExceedanceEvent]]:
        """The detector in the state it had when the last process stopped (``build`` makes
        it from a checkpoint path, or new from None), and the events the replay raised
        again (for the router, which joins them to the incidents they already made). The
        replayed readings' (node, seq) are in ``seen`` (for ``IngestService.remember``)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        newest = self._newest_checkpoint()
        if newest is None:
            legacy = self.folder / LEGACY_CHECKPOINT
            detector = build(legacy if legacy.exists() else None)
            base = 0
        else:
            detector = build(self._path("npz", newest))
            counts = json.loads(self._path("json", newest).read_text())
            self.readings = int(counts["readings"])
            self._nodes = {int(sid): node for sid, node in counts["nodes"].items()}
            base = newest + 1
        events: list[ExceedanceEvent] = []
        journals = sorted(int(p.stem.split("-")[1]) for p in self.folder.glob("journal-*.bin"))
        for generation in (g for g in journals if g >= base):
            events += self._replay(detector, self._path("journal", generation))
        self._generation = max([base, *(g + 1 for g in journals if g >= base)])
        self.checkpoint(detector)  # the replayed batches are in this one; the journal restarts
        return detector, events

    def _replay(self, detector: Detector, path: Path) -> list[ExceedanceEvent]:
        data = path.read_bytes()
        events: list[ExceedanceEvent] = []
        offset = 0
        while offset + _HEADER.size <= len(data):
            magic, text_bytes, rows = _HEADER.unpack_from(data, offset)
            end = offset + _HEADER.size + text_bytes + rows * _ROW_BYTES
            if magic != _MAGIC or end > len(data):
                log.warning("journal %s: torn record at byte %d ignored", path.name, offset)
                break  # its messages were never acknowledged: the broker sends them again
            body = offset + _HEADER.size
            for sid, node, quantity, limit_class, township in json.loads(
                data[body : body + text_bytes]
            ):
                if detector.series_id(node, quantity, limit_class, township) != sid:
                    raise ValueError(f"journal {path.name}: series {node}/{quantity} changed id")
                self._nodes[sid] = node
            columns = body + text_bytes
            seqs = np.frombuffer(data, np.int64, rows, columns + 8 * rows)
            batch = ReadingBatch(
                np.frombuffer(data, np.int64, rows, columns).copy(),
                np.frombuffer(data, np.int64, rows, columns + 16 * rows).copy(),
                np.frombuffer(data, np.float64, rows, columns + 24 * rows).copy(),
                np.frombuffer(data, np.bool_, rows, columns + 32 * rows).copy(),
            )
            self.seen += [(self._nodes[int(sid)], int(seq))
                          for sid, seq in zip(batch.series, seqs, strict=True)
                          if int(sid) in self._nodes]  # fmt: skip
            if rows:
                events += detector.update(batch)
            self.readings += rows
            self.replayed += rows
            offset = end
        log.info("journal %s: %d readings replayed into the detector", path.name, self.replayed)
        return events

    def record(self, batch: ReadingBatch, new_series: list[SeriesKey], seqs: list[int]) -> None:
        """Append a batch the detector has just taken, with the series registered since the
        previous record, in registration order, and the readings' seqs."""
        assert self._journal is not None, "load first"
        self._nodes.update((sid, node) for sid, node, *_ in new_series)
        text = json.dumps(new_series).encode()
        self._journal.write(b"".join((
            _HEADER.pack(_MAGIC, len(text), len(batch)), text,
            np.ascontiguousarray(batch.series, np.int64).tobytes(),
            np.asarray(seqs, np.int64).tobytes(),
            np.ascontiguousarray(batch.ts_s, np.int64).tobytes(),
            np.ascontiguousarray(batch.value, np.float64).tobytes(),
            np.ascontiguousarray(batch.valid, np.bool_).tobytes(),
        )))  # fmt: skip
        self._journal.flush()  # to the OS: survives the process being killed
        self.readings += len(batch)

    def checkpoint(self, detector: Detector) -> None:
        """Checkpoint ``detector`` as generation g (all it took so far), start journal g + 1
        and delete what g makes obsolete. Call it between batches (from the event loop)."""
        generation = self._generation
        counts = self._path("json", generation)
        tmp = counts.with_name(counts.name + ".tmp")
        tmp.write_text(json.dumps({"readings": self.readings, "nodes": self._nodes}))
        os.replace(tmp, counts)
        detector.checkpoint(self._path("npz", generation))
        if self._journal is not None:
            self._journal.close()
        self._generation = generation + 1
        self._journal = self._path("journal", self._generation).open("ab")
        for path in self.folder.glob("*-*.*"):
            kind, _, number = path.stem.partition("-")
            old = number.isdigit() and (
                (kind == "detector" and int(number) < generation)
                or (kind == "journal" and int(number) <= generation)
            )
            if old and path.suffix in (".npz", ".json", ".bin"):
                path.unlink(missing_ok=True)
        (self.folder / LEGACY_CHECKPOINT).unlink(missing_ok=True)

    def close(self) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal = None
