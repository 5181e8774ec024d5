"""`tianwang grid serve` and `tianwang grid hash-password` as a user runs them."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tianwang.services import free_port

ROOT = Path(__file__).resolve().parents[2]


def _cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tianwang.cli", *args], input=stdin,
                          capture_output=True, text=True, cwd=ROOT, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False)  # fmt: skip


def test_an_officer_logs_in_to_the_served_api(tmp_path: Path) -> None:
    hashed = _cli("grid", "hash-password", stdin="s3cret\n")
    assert hashed.returncode == 0 and hashed.stdout.startswith("scrypt$")
    credentials = tmp_path / "passwords.yaml"
    credentials.write_text(f"passwords:\n  off-nanma-dongli: '{hashed.stdout.strip()}'\n")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "tianwang.cli", "grid", "serve", "--grid",
         str(ROOT / "examples" / "county.yaml"), "--store", f"sqlite:///{tmp_path / 'i.db'}",
         "--passwords", str(credentials), "--port", str(port)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                assert httpx.get(f"{base}/openapi.json", timeout=2).status_code == 200
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the API did not come up"
                time.sleep(0.2)
        bad = httpx.post(f"{base}/v1/login", json={"officer_id": "off-nanma-dongli",
                                                   "password": "wrong"}, timeout=10)  # fmt: skip
        assert bad.status_code == 401
        good = httpx.post(f"{base}/v1/login", json={"officer_id": "off-nanma-dongli",
                                                    "password": "s3cret"}, timeout=10)  # fmt: skip
        assert good.status_code == 200, good.text
        token = good.json()["access_token"]
        me = httpx.get(f"{base}/v1/me", headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert me.status_code == 200 and "off-nanma-dongli" in me.text
    finally:
        server.terminate()
        server.wait(timeout=30)
