"""The ``tianwang`` command's subcommands, as a user runs them."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import EXAMPLES
from tianwang.services import Mosquitto


def tianwang(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tianwang.cli", *args], capture_output=True,
                          text=True, timeout=120)  # fmt: skip


def test_check_grid_accepts_the_example_and_names_the_error(tmp_path: Path) -> None:
    ok = tianwang("check-grid", str(EXAMPLES / "county.yaml"))
    assert ok.returncode == 0 and "68 nodes" in ok.stdout
    bad = tmp_path / "grid.yaml"
    bad.write_text("county: {id: x}\ntownships: [{id: t, villages: [{id: v}]}]\n")
    result = tianwang("check-grid", str(bad))
    assert result.returncode == 2
    assert "townships[0].villages[0].officer: missing" in result.stderr


def test_sim_publishes_the_county_and_writes_labels(tmp_path: Path, mosquitto: Mosquitto) -> None:
    labels = tmp_path / "labels.csv"
    result = tianwang("sim", "--broker", mosquitto.url, "--speed", "7200", "--labels", str(labels))
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["nodes"] == 68 and summary["readings_published"] == 47280
    rows = list(csv.DictReader(labels.open()))
    assert len(rows) == summary["labels"] == 16
    assert {r["quantity"] for r in rows} == {"NO2", "SO2"}


def test_edge_run_refuses_a_bad_configuration(tmp_path: Path) -> None:
    config = tmp_path / "node.yaml"
    config.write_text("node: yy-0001\nplace: {county: c, township: t, village: v}\n"
                      "broker: {url: 'mqtt://127.0.0.1:99999'}\n")  # fmt: skip
    result = tianwang("edge", "run", "--config", str(config))
    assert result.returncode == 2
    assert "broker.url" in result.stderr
