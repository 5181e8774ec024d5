"""``python -m firmware_sim.chaos``: run the scenarios, one JSON line each (``make chaos``).
Exit status 1 if any scenario lost, doubled or missed something."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import tempfile
from pathlib import Path

from firmware_sim.chaos import SCENARIOS, ChaosResult


def clean(result: ChaosResult) -> bool:
    """Nothing lost, nothing doubled, the detector saw every stored reading once, the
    incidents expected and no more; for the store scenario, no notice twice."""
    r = result
    return (r.lost == 0 and r.duplicated == 0 and r.detected == r.stored == r.published
            and r.incidents_missing == 0 and r.incidents_unexpected == 0
            and r.duplicate_incidents == 0
            and r.extra.get("notices_duplicated", 0) == 0
            and r.extra.get("escalations_missing", 0) == 0)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m firmware_sim.chaos")
    parser.add_argument("--only", nargs="+", choices=sorted(SCENARIOS), help="these only")
    parser.add_argument("--keep", type=Path, help="keep logs and data here (default: a temp dir)")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR)
    ok = True
    with tempfile.TemporaryDirectory(prefix="tw-chaos-") as tmp:
        root = args.keep or Path(tmp)
        for name in args.only or list(SCENARIOS):
            result = asyncio.run(SCENARIOS[name](root / name))
            print(json.dumps(result.line()), flush=True)
            ok = ok and clean(result)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
